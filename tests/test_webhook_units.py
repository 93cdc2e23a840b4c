"""Webhook pieces without a server: config, image extraction, cache, manifests and the CLI."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from trustkit.cli import cli, main
from trustkit.errors import BadInputError
from trustkit.verdict import Action, Context, Verdict
from trustkit.webhook import WebhookConfig
from trustkit.webhook.cache import VerdictCache
from trustkit.webhook.review import (
    MalformedReview,
    images_to_check,
    parse_review,
    pinned_image,
)


def review(kind: str, obj: Any, **request: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "x", "kind": {"kind": kind}, "operation": "CREATE", "object": obj}
        | request,
    }


# --- configuration --------------------------------------------------------------------------
def test_config_defaults_fail_closed() -> None:
    config = WebhookConfig()
    assert config.fail_open is False
    assert config.mode == "enforce"
    assert config.deadline_seconds == 8.0
    assert config.max_body_bytes == 1024 * 1024


def test_config_file_loaded_and_policy_files_in_generation(tmp_path: Path) -> None:
    policy = tmp_path / "prod.yaml"
    policy.write_text("rules: []\n")
    path = tmp_path / "webhook.yaml"
    path.write_text(
        "mode: warn\nfail_open: true\ndeadline_seconds: 5\nexempt_namespaces: [kube-system]\n"
        "exempt_images: ['registry.local/base/*']\npolicy_files: [prod.yaml]\n"
    )
    config = WebhookConfig.load(path)
    assert config.mode == "warn" and config.fail_open is True
    assert config.deadline_seconds == 5.0
    assert config.policy_files == (policy,)
    assert config.namespace_exempt("kube-system") and not config.namespace_exempt("default")
    assert config.image_exempt("registry.local/base/alpine:3")
    before = config.generation
    policy.write_text("rules: [changed]\n")
    assert WebhookConfig.load(path).generation != before


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("mode: audit\n", "mode must be"),
        ("fail_opne: true\n", "unknown setting"),
        ("deadline_seconds: 60\n", "at most 30"),
        ("deadline_seconds: '8'\n", "must be a number"),
        ("fail_open: 'yes'\n", "must be a bool"),
        ("exempt_images: nginx\n", "list of non-empty strings"),
        ("- a\n", "must be a mapping"),
        ("mode: [\n", "not valid YAML"),
        ("policy_files: [missing.yaml]\n", "does not exist"),
    ],
)
def test_bad_config_is_bad_input(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "webhook.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=error):
        WebhookConfig.load(path)


# --- extracting images ----------------------------------------------------------------------
def test_images_from_every_container_list() -> None:
    spec = {
        "initContainers": [{"name": "i", "image": "a"}],
        "containers": [{"name": "c", "image": "b"}, {"name": "noimage"}],
        "ephemeralContainers": [{"name": "e", "image": "c"}],
    }
    sites = images_to_check(parse_review(review("Pod", {"spec": spec})))
    assert [(s.pointer, s.image) for s in sites] == [
        ("/spec/initContainers/0/image", "a"),
        ("/spec/containers/0/image", "b"),
        ("/spec/ephemeralContainers/0/image", "c"),
    ]


def test_delete_and_status_subresource_have_no_images() -> None:
    obj = {"spec": {"containers": [{"image": "a"}]}}
    assert images_to_check(parse_review(review("Pod", obj, operation="DELETE"))) == []
    assert images_to_check(parse_review(review("Pod", obj, subResource="status"))) == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "not a JSON object"),
        ({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}, "apiVersion"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}, "AdmissionReview"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}, "uid"),
    ],
)
def test_malformed_reviews(body: Any, error: str) -> None:
    with pytest.raises(MalformedReview, match=error):
        parse_review(body)


def test_non_string_image_is_malformed() -> None:
    parsed = parse_review(review("Pod", {"spec": {"containers": [{"image": 5}]}}))
    with pytest.raises(MalformedReview, match="not a string"):
        images_to_check(parsed)


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("nginx", "nginx@sha256:x"),
        ("nginx:1.2", "nginx@sha256:x"),
        ("localhost:5000/team/app:v1", "localhost:5000/team/app@sha256:x"),
        ("localhost:5000/team/app", "localhost:5000/team/app@sha256:x"),
    ],
)
def test_pinned_image_keeps_the_name(image: str, pinned: str) -> None:
    assert pinned_image(image, "sha256:x") == pinned


# --- cache ----------------------------------------------------------------------------------
def verdict(allowed: bool) -> Verdict:
    action = Action.ALLOW if allowed else Action.BLOCK
    return Verdict("r", Context.ADMISSION, allowed, action)


def test_cache_ttls_and_lru() -> None:
    now = [0.0]
    cache = VerdictCache(ttl=10, refusal_ttl=1, max_entries=2, clock=lambda: now[0])
    cache.put("ok", verdict(True))
    cache.put("no", verdict(False))
    now[0] = 1.5
    assert cache.get("ok") is not None
    assert cache.get("no") is None  # refusals expire sooner
    cache.put("a", verdict(True))
    cache.put("b", verdict(True))  # evicts the least recently used
    assert cache.get("ok") is None and cache.get("b") is not None
    now[0] = 20
    assert cache.get("b") is None


# --- CLI ------------------------------------------------------------------------------------
def test_manifests_are_ready_to_apply(tmp_path: Path, webhook_ca: Any) -> None:
    result = CliRunner().invoke(
        cli,
        ["webhook", "manifests", "--namespace", "trust", "--ca-bundle", str(webhook_ca.ca_path)],
    )
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    kinds = [d["kind"] for d in docs]
    for kind in ("Deployment", "Service", "ValidatingWebhookConfiguration"):
        assert kind in kinds
    assert "MutatingWebhookConfiguration" in kinds
    for config in (d for d in docs if d["kind"].endswith("WebhookConfiguration")):
        hook = config["webhooks"][0]
        assert hook["sideEffects"] == "None"
        assert hook["failurePolicy"] == "Fail"
        assert hook["timeoutSeconds"] == 10
        assert hook["admissionReviewVersions"] == ["v1", "v1beta1"]
        selector = hook["namespaceSelector"]["matchExpressions"][0]
        assert selector["operator"] == "NotIn"
        assert selector["values"] == ["kube-system", "trust"]
        resources = {r for rule in hook["rules"] for r in rule["resources"]}
        assert {
            "pods",
            "pods/ephemeralcontainers",
            "deployments",
            "replicasets",
            "statefulsets",
            "daemonsets",
            "jobs",
            "cronjobs",
            "replicationcontrollers",
        } <= resources
        ca = base64.b64decode(hook["clientConfig"]["caBundle"])
        assert ca == webhook_ca.ca_path.read_bytes()
        assert hook["clientConfig"]["service"]["namespace"] == "trust"
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["metadata"]["namespace"] == "trust"


def test_manifests_refuse_bad_input(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    for argv in (
        ["webhook", "manifests", "--namespace", "Bad_NS"],
        ["webhook", "manifests", "--ca-bundle", str(not_pem)],
        ["webhook", "manifests", "--ca-bundle", str(tmp_path / "missing.pem")],
        ["webhook", "manifests", "--image", "NOT AN IMAGE"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv


def test_serve_with_unloadable_certificate_is_bad_input(tmp_path: Path) -> None:
    cert = tmp_path / "tls.crt"
    cert.write_text("not a certificate")
    with pytest.raises(SystemExit) as exit_info:
        main(["webhook", "serve", "--cert", str(cert), "--key", str(cert), "--port", "0"])
    assert exit_info.value.code == 2


def test_serve_with_bad_config_is_bad_input(tmp_path: Path) -> None:
    config = tmp_path / "webhook.yaml"
    config.write_text("mode: maybe\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["webhook", "serve", "--cert", "c", "--key", "k", "--config", str(config)])
    assert exit_info.value.code == 2


def test_webhook_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, trustkit.webhook, trustkit.cli.webhook; print('starlette' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the coalescing transport ---------------------------------------------------------------
class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def abort(self) -> None:
        self.closing = True
        self.events.append("abort")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.events.append("pause_reading")


def test_writes_in_one_turn_of_the_loop_leave_as_one() -> None:
    import asyncio

    from trustkit.webhook.server import CoalescingTransport

    async def scenario() -> None:
        inner = RecordingTransport()
        outer = CoalescingTransport(inner)  # type: ignore[arg-type]
        outer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        outer.write(bytearray(b"{}"))
        assert inner.writes == [] and outer.get_write_buffer_size() == 21
        await asyncio.sleep(0)
        assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        outer.write(b"last")
        outer.close()  # flushed first, then closed: nothing written is lost
        assert inner.events[-2:] == ["write", "close"] and inner.writes[-1] == b"last"
        outer.pause_reading()  # everything else reaches the transport as it is
        assert inner.events[-1] == "pause_reading"
        await asyncio.sleep(0)
        assert len(inner.writes) == 2  # the scheduled flush found nothing left

        aborted = RecordingTransport()
        outer = CoalescingTransport(aborted)  # type: ignore[arg-type]
        outer.write(b"dropped")
        outer.abort()
        await asyncio.sleep(0)
        assert aborted.writes == [] and aborted.events == ["abort"]

    asyncio.run(scenario())


def test_what_start_up_loaded_is_frozen_out_of_the_collectors_sight_once_ready() -> None:
    import asyncio
    import gc

    from trustkit.webhook.app import WebhookState

    class Prepared:
        prepared = False

        def __call__(self, reference: str, context: Context) -> Verdict:
            raise AssertionError("no review here")

        def prepare(self) -> None:
            self.prepared = True
            self.loaded = [[n] for n in range(10_000)]  # trust data, policies

        def refresh_due(self) -> bool:
            return False

    gc.unfreeze()
    checker = Prepared()
    state = WebhookState(WebhookConfig(), checker)  # type: ignore[arg-type]
    try:
        assert not state.ready and gc.get_freeze_count() == 0
        asyncio.run(state.prepare())
        assert state.ready and checker.prepared
        # a full collection under load no longer walks what start-up loaded
        assert gc.get_freeze_count() >= len(checker.loaded)
    finally:
        state.executor.shutdown(wait=False)
        gc.unfreeze()
