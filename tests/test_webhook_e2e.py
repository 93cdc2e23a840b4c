"""The admission webhook end to end: uvicorn over TLS on loopback, the real pipeline
(``PipelineChecker`` over real settings and policy files), images signed, attested and served by
the real local registry, and the real sample AdmissionReviews pointed at those images."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from fixtures.pipeline import PipelineWorld
from fixtures.webhook import ServedWebhook, WebhookServerFactory
from fixtures.webhook_e2e import DoomedRegistry, WebhookPolicies, rewrite_images

from trustkit.webhook import PipelineChecker, WebhookConfig
from trustkit.webhook.checker import VERSION_TTL_SECONDS

pytestmark = pytest.mark.registry

DATA = Path(__file__).parent / "data" / "webhook"
ALICE = "securesystemsengineering/alice-image:test"
CHARLIE = (
    "securesystemsengineering/charlie-image@sha256:"
    "91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff"
)
FLUENTD = "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"
PERL = "perl:5.34.0"
BUSYBOX, REDIS, MYSQL = "busybox:1.32", "redis:alpine", "mysql:8"
NGINX = "nginx"
NOT_SIGNED = "is not signed"


def sample(name: str, mapping: dict[str, str]) -> dict[str, Any]:
    data = json.loads((DATA / f"connaisseur_{name}.json").read_text())
    rewritten: dict[str, Any] = rewrite_images(data, mapping)
    text = json.dumps(rewritten)  # (an annotation may still quote the old spec: not an image)
    assert all(json.dumps(old) not in text for old in mapping), "an image was not rewritten"
    return rewritten


def post(served: ServedWebhook, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = served.client(timeout=30).post(path, json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    assert answer["kind"] == "AdmissionReview"
    assert answer["apiVersion"] == body["apiVersion"]
    response: dict[str, Any] = answer["response"]
    assert response["uid"] == body["request"]["uid"]
    return response


def patch_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    if "patch" not in response:
        return []
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return patch


def refused_images(response: dict[str, Any]) -> list[str]:
    """The images a denial names, in order (``trustkit refused N image(s): IMG: why | ...``)."""
    assert response["allowed"] is False
    message: str = response["status"]["message"]
    assert message.startswith("trustkit refused ")
    body = message.split(": ", 1)[1]
    return [part.split(": ", 1)[0] for part in body.split(" | ")]


def pinned(ref: str, digest: str) -> str:
    return f"{ref.rsplit(':', 1)[0]}@{digest}"


@pytest.fixture
def served(webhook_server: WebhookServerFactory, pipeline_world: PipelineWorld) -> ServedWebhook:
    """No policies: content trust alone decides."""
    return webhook_server(PipelineChecker(pipeline_world.settings))


@pytest.fixture
def served_block_high(
    webhook_server: WebhookServerFactory,
    pipeline_world: PipelineWorld,
    webhook_policies: WebhookPolicies,
) -> ServedWebhook:
    return webhook_server(PipelineChecker(pipeline_world.settings, [webhook_policies.block_high]))


# --- signed, unsigned, policy-blocked ---------------------------------------------------------
def test_signed_deployment_allowed_and_pinned_to_the_signed_digest(
    served: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    signed = pipeline_world.ref("noscan")
    body = sample("01_deployment", {ALICE: signed})
    assert body["apiVersion"] == "admission.k8s.io/v1beta1"  # answered in the same version

    validated = post(served, "/validate", body)
    assert validated["allowed"] is True
    assert "status" not in validated and "patch" not in validated  # /validate never patches

    mutated = post(served, "/mutate", body)
    assert mutated["allowed"] is True
    want = pinned(signed, pipeline_world.digest("noscan"))
    pointer = "/spec/template/spec/containers/0/image"
    assert patch_of(mutated) == [{"op": "replace", "path": pointer, "value": want}]
    obj = body["request"]["object"]
    result = jsonpatch.apply_patch(obj, patch_of(mutated))
    assert result["spec"]["template"]["spec"]["containers"][0]["image"] == want
    # everything but the image is untouched
    result["spec"]["template"]["spec"]["containers"][0]["image"] = signed
    assert result == obj

    # the pinned spec comes back to the webhook (the API server re-runs validation): allowed, and
    # /mutate leaves it alone
    repinned = rewrite_images(body, {signed: want})
    assert post(served, "/validate", repinned)["allowed"] is True
    assert patch_of(post(served, "/mutate", repinned)) == []


def test_pod_pinned_to_a_signed_digest_allowed_without_a_patch(
    served: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    body = sample(
        "02_pod", {CHARLIE: pinned(pipeline_world.ref("clean"), pipeline_world.digest("clean"))}
    )
    answer = post(served, "/mutate", body)
    assert answer["allowed"] is True
    assert patch_of(answer) == []


def test_unsigned_image_denied_naming_it_and_why(
    served: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    unsigned = pipeline_world.ref("unsigned")
    body = sample("06_daemonset", {FLUENTD: unsigned})
    for path in ("/validate", "/mutate"):
        answer = post(served, path, body)
        assert answer["allowed"] is False
        assert answer["status"]["code"] == 403
        assert refused_images(answer) == [unsigned]
        assert NOT_SIGNED in answer["status"]["message"]
        assert "patch" not in answer  # nothing pinned on a denial


def test_policy_blocked_image_denied_with_the_policy_reason(
    served_block_high: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    juice = pipeline_world.ref("juice")
    answer = post(served_block_high, "/validate", sample("08_job", {PERL: juice}))
    assert refused_images(answer) == [juice]
    message = answer["status"]["message"]
    # the policy that refused, named once, and why
    assert f"{juice}: policy block-high: 86 vulnerabilities at or above HIGH: CVE-" in message
    assert message.count("block-high") == 1
    # the same image is fine without the policy: the refusal is the policy's, not trust's
    clean = post(
        served_block_high, "/validate", sample("08_job", {PERL: pipeline_world.ref("clean")})
    )
    assert clean["allowed"] is True


def test_multi_image_deployment_denied_naming_just_the_unsigned_image(
    served: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    unsigned = pipeline_world.ref("unsigned")
    mapping = {
        BUSYBOX: pipeline_world.ref("clean"),  # an init container
        REDIS: pipeline_world.ref("noscan"),
        MYSQL: unsigned,
    }
    body = sample("09_dply_multi_image", mapping)
    answer = post(served, "/validate", body)
    assert refused_images(answer) == [unsigned]
    assert NOT_SIGNED in answer["status"]["message"]
    for good in (mapping[BUSYBOX], mapping[REDIS]):
        assert good not in answer["status"]["message"]

    # with the bad image replaced, /mutate pins all three, init container included
    fixed = rewrite_images(body, {unsigned: pipeline_world.ref("juice")})
    mutated = post(served, "/mutate", fixed)
    assert mutated["allowed"] is True
    spec = jsonpatch.apply_patch(fixed["request"]["object"], patch_of(mutated))["spec"]["template"][
        "spec"
    ]
    assert spec["initContainers"][0]["image"] == pinned(
        pipeline_world.ref("clean"), pipeline_world.digest("clean")
    )
    assert [c["image"] for c in spec["containers"]] == [
        pinned(pipeline_world.ref("noscan"), pipeline_world.digest("noscan")),
        pinned(pipeline_world.ref("juice"), pipeline_world.digest("juice")),
    ]


def test_multi_image_deployment_denied_naming_just_the_policy_blocked_image(
    served_block_high: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    juice = pipeline_world.ref("juice")
    clean = pipeline_world.ref("clean")
    mapping = {
        BUSYBOX: clean,
        REDIS: pinned(clean, pipeline_world.digest("clean")),
        MYSQL: juice,
    }
    answer = post(served_block_high, "/validate", sample("09_dply_multi_image", mapping))
    assert refused_images(answer) == [juice]
    assert "block-high:" in answer["status"]["message"]


# --- init and ephemeral containers ------------------------------------------------------------
def test_init_container_checked_like_any_other(
    served: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    app = pinned(pipeline_world.ref("clean"), pipeline_world.digest("clean"))
    unsigned = pipeline_world.ref("unsigned")
    denied = post(
        served, "/mutate", sample("19_pod_initcontainer", {CHARLIE: app, NGINX: unsigned})
    )
    assert refused_images(denied) == [unsigned]

    signed = pipeline_world.ref("noscan")
    body = sample("19_pod_initcontainer", {CHARLIE: app, NGINX: signed})
    mutated = post(served, "/mutate", body)
    assert mutated["allowed"] is True
    want = pinned(signed, pipeline_world.digest("noscan"))
    assert patch_of(mutated) == [
        {"op": "replace", "path": "/spec/initContainers/0/image", "value": want}
    ]
    pod = jsonpatch.apply_patch(body["request"]["object"], patch_of(mutated))
    assert pod["spec"]["initContainers"][0]["image"] == want
    assert pod["spec"]["containers"][0]["image"] == app


def ephemeral_review(pod: dict[str, Any], image: str, uid: str) -> dict[str, Any]:
    """``kubectl debug``: an UPDATE of pods/ephemeralcontainers adding one container."""
    new = json.loads(json.dumps(pod))
    new["spec"]["ephemeralContainers"] = [
        {"name": "debugger", "image": image, "targetContainerName": "test-connaisseur"}
    ]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "ephemeralcontainers",
            "namespace": "test-connaisseur",
            "operation": "UPDATE",
            "object": new,
            "oldObject": pod,
        },
    }


def test_ephemeral_container_checked_like_any_other(
    served: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    # the running container is unsigned: an ephemeral update only judges what it adds
    pod = sample("02_pod", {CHARLIE: pipeline_world.ref("unsigned")})["request"]["object"]
    unsigned = pipeline_world.ref("unsigned", tag="debug")
    denied = post(served, "/validate", ephemeral_review(pod, unsigned, "eph-1"))
    assert refused_images(denied) == [unsigned]
    assert NOT_SIGNED in denied["status"]["message"]

    signed = pipeline_world.ref("noscan")
    body = ephemeral_review(pod, signed, "eph-2")
    mutated = post(served, "/mutate", body)
    assert mutated["allowed"] is True
    want = pinned(signed, pipeline_world.digest("noscan"))
    assert patch_of(mutated) == [
        {"op": "replace", "path": "/spec/ephemeralContainers/0/image", "value": want}
    ]
    result = jsonpatch.apply_patch(body["request"]["object"], patch_of(mutated))
    assert result["spec"]["ephemeralContainers"][0]["image"] == want


# --- digest-pinned images: known pipeline gaps (trustkit.enforce.check_trust) ------------------
def test_digest_pinned_image_of_an_unsigned_repository_is_denied(
    served: ServedWebhook, pipeline_world: PipelineWorld
) -> None:
    rogue = pinned(pipeline_world.ref("unsigned"), pipeline_world.digest("unsigned"))
    answer = post(served, "/validate", sample("02_pod", {CHARLIE: rogue}))
    assert answer["allowed"] is False


def test_require_signed_accepts_the_webhooks_own_pin(
    webhook_server: WebhookServerFactory, pipeline_world: PipelineWorld, tmp_path: Path
) -> None:
    from fixtures.pipeline import policy_yaml

    policy = tmp_path / "signed.yaml"
    policy.write_text(policy_yaml("signed", require_signed=True, require_scan=False))
    served = webhook_server(PipelineChecker(pipeline_world.settings, [policy]))
    body = sample("01_deployment", {ALICE: pipeline_world.ref("noscan")})
    mutated = post(served, "/mutate", body)
    assert mutated["allowed"] is True
    pod_template = jsonpatch.apply_patch(
        body, [{**op, "path": "/request/object" + op["path"]} for op in patch_of(mutated)]
    )
    assert post(served, "/validate", pod_template)["allowed"] is True


# --- WARN -------------------------------------------------------------------------------------
def test_warn_policy_allows_with_warnings(
    webhook_server: WebhookServerFactory,
    pipeline_world: PipelineWorld,
    webhook_policies: WebhookPolicies,
) -> None:
    served = webhook_server(PipelineChecker(pipeline_world.settings, [webhook_policies.warn_high]))
    juice = pipeline_world.ref("juice")
    body = sample("08_job", {PERL: juice})
    answer = post(served, "/mutate", body)
    assert answer["allowed"] is True
    warnings = answer["warnings"]
    assert warnings and all(w.startswith(f"{juice}: ") for w in warnings)
    assert any("CVE-" in w for w in warnings)
    assert all(len(w) <= 256 for w in warnings)
    # a warned image is still pinned to its signed digest
    assert patch_of(answer)[0]["value"] == pinned(juice, pipeline_world.digest("juice"))
    # a clean image draws no warning
    clean = post(served, "/validate", sample("08_job", {PERL: pipeline_world.ref("clean")}))
    assert clean["allowed"] is True and "warnings" not in clean


# --- a registry that stops answering ----------------------------------------------------------
def test_registry_that_stops_answering_is_a_denial_before_the_deadline(
    webhook_server: WebhookServerFactory,
    doomed_registry: DoomedRegistry,
    webhook_policies: WebhookPolicies,
    pipeline_world: PipelineWorld,
) -> None:
    deadline = 1.5
    served = webhook_server(
        PipelineChecker(pipeline_world.settings, [webhook_policies.require_scan]),
        WebhookConfig(deadline_seconds=deadline),
    )
    body = sample("08_job", {PERL: doomed_registry.ref})
    # answering: the signed image has its scan, so it is allowed
    assert post(served, "/validate", body)["allowed"] is True

    served.state.cache.clear()
    doomed_registry.pause()  # accepts connections (kernel backlog), never answers
    started = time.monotonic()
    answer = post(served, "/validate", body)
    took = time.monotonic() - started
    assert answer["allowed"] is False
    assert refused_images(answer) == [doomed_registry.ref]
    assert f"did not finish within the {deadline:g} s deadline" in answer["status"]["message"]
    assert deadline - 0.1 <= took < deadline + 1.0, took

    # the verification was abandoned at the deadline of the review that started it: no worker
    # thread is left waiting on the paused registry once the answer is out
    wait_until = time.monotonic() + 2.0
    while served.state.flights.in_flight() and time.monotonic() < wait_until:
        time.sleep(0.05)
    assert served.state.flights.in_flight() == 0

    # the API server's ?timeout=2s leaves 1 s (its margin): that shorter deadline wins, and the
    # reason says so
    started = time.monotonic()
    reply = served.client(timeout=30).post("/validate?timeout=2s", json=body)
    took = time.monotonic() - started
    answer = reply.json()["response"]
    assert refused_images(answer) == [doomed_registry.ref]
    assert "did not finish within the 1 s deadline" in answer["status"]["message"]
    assert 0.9 <= took < 1.9, took  # before the API server gives up at 2 s

    # a timeout is not a verdict: once the registry answers again, so does the webhook
    doomed_registry.resume()
    time.sleep(0.1)
    assert post(served, "/validate", body)["allowed"] is True


def test_stopped_registry_is_a_denial_with_its_reason(
    webhook_server: WebhookServerFactory,
    doomed_registry: DoomedRegistry,
    webhook_policies: WebhookPolicies,
    pipeline_world: PipelineWorld,
) -> None:
    served = webhook_server(
        PipelineChecker(pipeline_world.settings, [webhook_policies.require_scan]),
        WebhookConfig(deadline_seconds=3.0),
    )
    doomed_registry.stop()
    started = time.monotonic()
    answer = post(served, "/validate", sample("08_job", {PERL: doomed_registry.ref}))
    took = time.monotonic() - started
    assert refused_images(answer) == [doomed_registry.ref]
    message = answer["status"]["message"]
    assert doomed_registry.registry.host in message
    assert "deadline" not in message  # the real reason, not a timeout
    assert took < 3.0
    print(f"\nstopped registry: denied in {took * 1000:.0f} ms: {message}")


# --- cold first verification, measured --------------------------------------------------------
def test_cold_first_verification_latency_per_image(
    webhook_server: WebhookServerFactory,
    pipeline_world: PipelineWorld,
    webhook_policies: WebhookPolicies,
) -> None:
    """First (uncached) review of one image through the real pipeline, then the warm one.

    The HIGH BLOCK policy makes every review resolve trust, fetch the scan attestations from the
    registry and verify them: ``clean`` is allowed, ``juice`` (juice-shop scan) is blocked,
    ``unsigned`` is refused by content trust before any registry request.
    """
    figures: dict[str, tuple[float, float]] = {}
    for name, want in (("clean", True), ("juice", False), ("unsigned", False)):
        colds, warms = [], []
        for _ in range(3):  # a fresh server each time: an empty verdict cache
            served = webhook_server(
                PipelineChecker(pipeline_world.settings, [webhook_policies.block_high])
            )
            client = served.client(timeout=30)
            ready_by = time.monotonic() + 10  # policies loaded: the first review measures it not
            while client.get("/readyz").status_code != 200:  # (and sets up the TLS connection)
                assert time.monotonic() < ready_by, "the webhook never became ready"
                time.sleep(0.01)
            body = sample("08_job", {PERL: pipeline_world.ref(name)})
            for times in (colds, warms):
                started = time.perf_counter()
                reply = client.post("/validate", json=body)
                times.append(time.perf_counter() - started)
                assert reply.json()["response"]["allowed"] is want
            assert served.state.metrics.cache["hit"] == 1
        figures[name] = (sorted(colds)[1], sorted(warms)[1])
    print("\nwebhook first review through the real pipeline (median of 3, ms):")
    for name, (cold, warm) in figures.items():
        print(f"  {name:9} cold {cold * 1000:7.1f}   warm {warm * 1000:5.1f}")
    for name in ("clean", "juice"):  # the ones that go to the registry
        assert figures[name][1] < figures[name][0]
    assert all(cold < 2.0 for cold, _ in figures.values())  # far below the 8 s deadline


def test_pipeline_cache_key_is_the_same_before_and_after_prepare(
    pipeline_world: PipelineWorld, webhook_policies: WebhookPolicies
) -> None:
    # a review answered while policies were loading must be found in the cache afterwards
    checker = PipelineChecker(pipeline_world.settings, [webhook_policies.block_high])
    before = checker.cache_key(pipeline_world.ref("clean"))
    checker.prepare()
    assert checker.cache_key(pipeline_world.ref("clean")) == before
    other = PipelineChecker(pipeline_world.settings, [webhook_policies.warn_high])
    assert other.cache_key(pipeline_world.ref("clean")) != before


def test_a_revocation_is_not_masked_by_the_verdict_cache(
    served: ServedWebhook, pipeline_world: PipelineWorld, tmp_path: Path
) -> None:
    """The cache key carries the collection's trust-data version (read at most once per
    VERSION_TTL_SECONDS per collection): a revoked tag is refused within that second, not when a
    cached 'allowed' expires."""
    from fixtures.registry import make_oci_image

    from trustkit.collections import revoke
    from trustkit.pipeline.flows import push_image
    from trustkit.refs import parse

    ref = pipeline_world.ref("revocable")
    image = make_oci_image(tmp_path / "layout", "v1", (256,))
    push_image(pipeline_world.settings, image.oci, ref, sign=True)
    review = sample("02_pod", {CHARLIE: ref})
    assert post(served, "/validate", review)["allowed"] is True
    assert post(served, "/validate", review)["allowed"] is True
    metrics = served.client().get("/metrics").text
    assert 'trustkit_webhook_cache_total{result="hit"} 1' in metrics  # the second came from cache
    revoke(pipeline_world.settings, parse(ref))
    time.sleep(VERSION_TTL_SECONDS + 0.05)
    assert refused_images(post(served, "/validate", review)) == [ref]
