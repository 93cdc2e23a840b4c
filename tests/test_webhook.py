"""The admission webhook served by uvicorn over TLS on loopback, driven by real AdmissionReviews."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
from cryptography import x509
from fixtures.webhook import ServedWebhook, TableChecker, WebhookServerFactory

from trustkit.errors import UnreachableError
from trustkit.verdict import Action, Context, Reason, Verdict
from trustkit.webhook import WebhookConfig

DATA = Path(__file__).parent / "data" / "webhook"
ALICE = "docker.io/securesystemsengineering/alice-image:test"
CHARLIE = (
    "docker.io/securesystemsengineering/charlie-image@sha256:"
    "91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff"
)
FLUENTD = "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"
BUSYBOX = "docker.io/library/busybox:1.32"
REDIS = "docker.io/library/redis:alpine"
MYSQL = "docker.io/library/mysql:8"


def digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


def allowed(ref: str, n: int, *reasons: Reason) -> Verdict:
    action = max((r.action for r in reasons), default=Action.ALLOW)
    return Verdict(ref, Context.ADMISSION, True, action, digest(n), reasons=reasons)


def blocked(ref: str, *reasons: Reason) -> Verdict:
    return Verdict(ref, Context.ADMISSION, False, Action.BLOCK, None, reasons=reasons)


def table() -> dict[str, Verdict]:
    return {
        ALICE: allowed(ALICE, 1),
        CHARLIE: allowed(CHARLIE, 0x91),
        FLUENTD: blocked(
            FLUENTD,
            Reason(
                "severity", "2 critical vulnerabilities (CVE-2024-1, CVE-2024-2)", policy="prod"
            ),
        ),
        BUSYBOX: allowed(
            BUSYBOX, 2, Reason("age", "image is 400 days old", action=Action.WARN, policy="prod")
        ),
        REDIS: allowed(REDIS, 3),
        MYSQL: allowed(
            MYSQL, 4, Reason("severity", "1 high vulnerability", action=Action.AUDIT, policy="prod")
        ),
    }


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"connaisseur_{name}.json").read_text())
    return data


def review_of(
    kind: str, obj: dict[str, Any], *, uid: str = "u-1", **request: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "operation": "CREATE",
            "namespace": "default",
            "object": obj,
            **request,
        },
    }


def post(served: ServedWebhook, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = served.client().post(path, json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    assert answer["kind"] == "AdmissionReview"
    assert answer["apiVersion"] == body["apiVersion"]
    assert answer["response"]["uid"] == body["request"]["uid"]
    response: dict[str, Any] = answer["response"]
    return response


def patch_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    if "patch" not in response:
        return []
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return patch


@pytest.fixture
def served(webhook_server: WebhookServerFactory) -> ServedWebhook:
    return webhook_server(TableChecker(table()))


# --- every sample, the right verdict --------------------------------------------------------
def test_signed_deployment_v1beta1_allowed_and_pinned(served: ServedWebhook) -> None:
    body = sample("01_deployment")
    answer = post(served, "/validate", body)
    assert answer["allowed"] is True
    assert "patch" not in answer  # /validate never patches
    mutated = post(served, "/mutate", body)
    assert mutated["allowed"] is True
    patch = patch_of(mutated)
    assert patch == [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": f"securesystemsengineering/alice-image@{digest(1)}",
        }
    ]
    result = jsonpatch.apply_patch(body["request"]["object"], patch)
    assert result["spec"]["template"]["spec"]["containers"][0]["image"].endswith(digest(1))


def test_pinned_pod_allowed_and_left_alone(served: ServedWebhook) -> None:
    answer = post(served, "/mutate", sample("02_pod"))
    assert answer["allowed"] is True
    assert "patch" not in answer  # already pinned: idempotent


def test_policy_blocked_daemonset_denied_with_reason(served: ServedWebhook) -> None:
    answer = post(served, "/validate", sample("06_daemonset"))
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    assert "quay.io/fluentd_elasticsearch/fluentd:v2.5.2" in answer["status"]["message"]
    assert "2 critical vulnerabilities" in answer["status"]["message"]
    assert "patch" not in post(served, "/mutate", sample("06_daemonset"))


def test_unsigned_job_denied(served: ServedWebhook) -> None:
    answer = post(served, "/validate", sample("08_job"))
    assert answer["allowed"] is False
    assert "perl:5.34.0" in answer["status"]["message"]
    assert "not signed" in answer["status"]["message"]


def test_multi_image_deployment_warns_audits_and_pins_init_containers(
    served: ServedWebhook,
) -> None:
    body = sample("09_dply_multi_image")
    answer = post(served, "/mutate", body)
    assert answer["allowed"] is True
    assert answer["warnings"] == ["busybox:1.32: image is 400 days old"]
    assert list(answer["auditAnnotations"].values()) == ["mysql:8: severity: 1 high vulnerability"]
    patch = patch_of(answer)
    pod = "/spec/template/spec"
    assert {p["path"] for p in patch} == {
        f"{pod}/initContainers/0/image",
        f"{pod}/containers/0/image",
        f"{pod}/containers/1/image",
    }
    result = jsonpatch.apply_patch(body["request"]["object"], patch)
    spec = result["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["image"] == f"busybox@{digest(2)}"
    assert [c["image"] for c in spec["containers"]] == [f"redis@{digest(3)}", f"mysql@{digest(4)}"]
    # applying the patched object again asks for no further change
    again = copy.deepcopy(body)
    again["request"]["object"] = result
    assert "patch" not in post(served, "/mutate", again)


def test_unsigned_init_container_denies_pod(served: ServedWebhook) -> None:
    answer = post(served, "/validate", sample("19_pod_initcontainer"))
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert "nginx: " in message and "not signed" in message
    assert "charlie-image" not in message  # only refused images are named
    assert message.startswith("trustkit refused 1 image(s)")


def test_every_refused_image_is_named(served: ServedWebhook) -> None:
    pod = {
        "spec": {
            "containers": [{"name": "a", "image": "unsigned-a:1"}, {"name": "b", "image": REDIS}],
            "initContainers": [{"name": "c", "image": FLUENTD}],
        }
    }
    answer = post(served, "/validate", review_of("Pod", pod))
    message = answer["status"]["message"]
    assert "refused 2 image(s)" in message
    assert "unsigned-a:1" in message and FLUENTD in message and "redis" not in message


# --- workload kinds and ephemeral containers ------------------------------------------------
def test_cronjob_template_checked(served: ServedWebhook) -> None:
    job = sample("08_job")["request"]["object"]
    cron = {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": job["spec"]}}}
    answer = post(served, "/validate", review_of("CronJob", cron))
    assert answer["allowed"] is False and "perl:5.34.0" in answer["status"]["message"]


@pytest.mark.parametrize(
    "kind", ["ReplicaSet", "StatefulSet", "ReplicationController", "Deployment", "DaemonSet"]
)
def test_workload_templates_checked(served: ServedWebhook, kind: str) -> None:
    obj = {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "evil:1"}]}}}}
    answer = post(served, "/validate", review_of(kind, obj))
    assert answer["allowed"] is False and "evil:1" in answer["status"]["message"]


def test_ephemeral_container_update_checked_and_pinned(served: ServedWebhook) -> None:
    old = sample("02_pod")["request"]["object"]
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "debugger:1"}]
    request = {"operation": "UPDATE", "subResource": "ephemeralcontainers", "oldObject": old}
    body = review_of("Pod", new, **request)
    answer = post(served, "/validate", body)
    assert answer["allowed"] is False
    assert "debugger:1" in answer["status"]["message"]

    new["spec"]["ephemeralContainers"][0]["image"] = "redis:alpine"
    body = review_of("Pod", new, **request)
    answer = post(served, "/mutate", body)
    assert answer["allowed"] is True
    assert patch_of(answer) == [
        {
            "op": "replace",
            "path": "/spec/ephemeralContainers/0/image",
            "value": f"redis@{digest(3)}",
        }
    ]
    jsonpatch.apply_patch(new, patch_of(answer))


def test_update_checks_only_changed_images(served: ServedWebhook) -> None:
    checker = served.state.checker
    old = {"spec": {"containers": [{"name": "a", "image": "legacy-unsigned:1"}]}}
    relabelled = copy.deepcopy(old) | {"metadata": {"labels": {"x": "y"}}}
    answer = post(
        served, "/mutate", review_of("Pod", relabelled, operation="UPDATE", oldObject=old)
    )
    assert answer["allowed"] is True and "patch" not in answer
    assert checker.calls == []
    changed = {"spec": {"containers": [{"name": "a", "image": "legacy-unsigned:2"}]}}
    answer = post(served, "/validate", review_of("Pod", changed, operation="UPDATE", oldObject=old))
    assert answer["allowed"] is False


def test_unknown_kind_allowed_without_images(served: ServedWebhook) -> None:
    answer = post(served, "/validate", review_of("ConfigMap", {"data": {"image": "evil:1"}}))
    assert answer == {"uid": "u-1", "allowed": True}
    assert served.state.checker.calls == []


def test_invalid_image_reference_denied(served: ServedWebhook) -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "UPPER/Case:1"}]}}
    answer = post(served, "/validate", review_of("Pod", pod))
    assert answer["allowed"] is False
    assert "invalid image reference" in answer["status"]["message"]


# --- bad requests ---------------------------------------------------------------------------
def test_malformed_json_is_400_with_json_error(served: ServedWebhook) -> None:
    reply = served.client().post(
        "/validate", content=b'{"apiVersion": ', headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    assert "malformed JSON" in reply.json()["error"]


def test_not_an_admission_review_is_400(served: ServedWebhook) -> None:
    reply = served.client().post("/validate", json={"apiVersion": "v1", "kind": "Pod"})
    assert reply.status_code == 400
    assert "apiVersion" in reply.json()["error"]
    reply = served.client().post(
        "/validate", json={"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    )
    assert reply.status_code == 400 and "request" in reply.json()["error"]


def test_oversized_body_is_413(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(table()), WebhookConfig(max_body_bytes=4096))
    body = review_of("Pod", {"spec": {"containers": []}, "pad": "x" * 5000})
    reply = served.client().post("/validate", json=body)
    assert reply.status_code == 413
    assert "4096" in reply.json()["error"]

    def chunks() -> Any:  # no Content-Length: the stream itself is bounded
        for _ in range(10):
            yield b"x" * 1000

    reply = served.client().post("/validate", content=chunks())
    assert reply.status_code == 413
    small = post(served, "/validate", review_of("Pod", {"spec": {"containers": []}}))
    assert small["allowed"] is True


# --- deadline, failures, fail open ----------------------------------------------------------
def test_checker_past_deadline_is_denied_before_deadline(
    webhook_server: WebhookServerFactory,
) -> None:
    checker = TableChecker(table(), delay=3.0)
    served = webhook_server(checker, WebhookConfig(deadline_seconds=0.5))
    started = time.monotonic()
    answer = post(served, "/validate", sample("01_deployment"))
    elapsed = time.monotonic() - started
    assert answer["allowed"] is False
    assert "deadline" in answer["status"]["message"]
    assert elapsed < 1.5


def test_api_server_timeout_query_shortens_deadline(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(table(), delay=3.0), WebhookConfig(deadline_seconds=8))
    started = time.monotonic()
    reply = served.client().post("/validate?timeout=2s", json=sample("01_deployment"))
    assert reply.json()["response"]["allowed"] is False
    assert time.monotonic() - started < 1.8  # 2 s minus the margin


def test_fail_open_only_when_configured(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(
        TableChecker(table(), delay=3.0), WebhookConfig(deadline_seconds=0.3, fail_open=True)
    )
    answer = post(served, "/mutate", sample("01_deployment"))
    assert answer["allowed"] is True
    assert "not verified (failing open)" in answer["warnings"][0]
    assert "patch" not in answer  # nothing verified, nothing pinned


class Unreachable:
    def __call__(self, reference: str, context: Context) -> Verdict:
        raise UnreachableError(f"registry for {reference} does not answer")


class Broken:
    def __call__(self, reference: str, context: Context) -> Verdict:
        raise RuntimeError("bug")


def test_unreachable_registry_is_a_denial_with_its_reason(
    webhook_server: WebhookServerFactory,
) -> None:
    answer = post(webhook_server(Unreachable()), "/validate", sample("08_job"))
    assert answer["allowed"] is False
    assert "does not answer" in answer["status"]["message"]
    opened = webhook_server(Unreachable(), WebhookConfig(fail_open=True))
    answer = post(opened, "/validate", sample("08_job"))
    assert answer["allowed"] is True and "does not answer" in answer["warnings"][0]


def test_internal_error_is_a_denial(webhook_server: WebhookServerFactory) -> None:
    answer = post(webhook_server(Broken()), "/validate", sample("08_job"))
    assert answer["allowed"] is False
    assert "internal error: RuntimeError" in answer["status"]["message"]


def test_warn_mode_allows_with_warning(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(table()), WebhookConfig(mode="warn"))
    answer = post(served, "/mutate", sample("06_daemonset"))
    assert answer["allowed"] is True
    assert answer["warnings"][0].startswith("would be refused: quay.io/fluentd")
    assert "patch" not in answer  # a refused image is never pinned


def test_exempt_namespaces_and_images(webhook_server: WebhookServerFactory) -> None:
    checker = TableChecker(table())
    config = WebhookConfig(
        exempt_namespaces=("kube-system",), exempt_images=("docker.io/library/perl:*",)
    )
    served = webhook_server(checker, config)
    assert post(served, "/validate", sample("06_daemonset"))["allowed"] is True
    assert post(served, "/validate", sample("08_job"))["allowed"] is True
    assert checker.calls == []


# --- cache and single-flight ----------------------------------------------------------------
def test_second_request_is_a_cache_hit(served: ServedWebhook) -> None:
    checker = served.state.checker
    post(served, "/validate", sample("01_deployment"))
    post(served, "/validate", sample("01_deployment"))
    post(served, "/mutate", sample("01_deployment"))
    assert checker.calls == [ALICE]
    metrics = served.client().get("/metrics").text
    assert 'trustkit_webhook_cache_total{result="hit"} 2' in metrics
    assert 'trustkit_webhook_cache_total{result="miss"} 1' in metrics


def test_refusals_expire_sooner(webhook_server: WebhookServerFactory) -> None:
    checker = TableChecker(table())
    served = webhook_server(checker, WebhookConfig(refusal_ttl_seconds=0.2))
    post(served, "/validate", sample("08_job"))
    post(served, "/validate", sample("08_job"))
    assert len(checker.calls) == 1
    time.sleep(0.3)
    post(served, "/validate", sample("08_job"))
    assert len(checker.calls) == 2


def test_concurrent_requests_share_one_verification(
    webhook_server: WebhookServerFactory,
) -> None:
    checker = TableChecker(table(), delay=0.5)
    served = webhook_server(checker)
    body = sample("01_deployment")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(served, "/validate", body), range(8)))
    assert all(a["allowed"] for a in answers)
    assert checker.calls == [ALICE]
    assert served.state.flights.joined == 7


# --- health, readiness, metrics, TLS --------------------------------------------------------
class SlowToPrepare(TableChecker):
    def __init__(self) -> None:
        super().__init__(table())
        self.go = threading.Event()

    def prepare(self) -> None:
        if not self.go.wait(10):
            raise RuntimeError("never released")


def test_ready_once_prepared(webhook_server: WebhookServerFactory) -> None:
    checker = SlowToPrepare()
    served = webhook_server(checker)
    client = served.client()
    assert client.get("/healthz").status_code == 200
    reply = client.get("/readyz")
    assert reply.status_code == 503 and reply.json()["ready"] is False
    checker.go.set()
    for _ in range(100):
        if client.get("/readyz").status_code == 200:
            break
        time.sleep(0.02)
    assert client.get("/readyz").json() == {"ready": True}


def test_metrics_exposition(served: ServedWebhook) -> None:
    post(served, "/validate", sample("06_daemonset"))
    post(served, "/validate", sample("01_deployment"))
    served.client().post("/validate", content=b"nope")
    text = served.client().get("/metrics").text
    assert 'trustkit_webhook_requests_total{path="/validate",code="200"} 2' in text
    assert 'trustkit_webhook_requests_total{path="/validate",code="400"} 1' in text
    assert 'trustkit_webhook_verdicts_total{action="BLOCK"} 1' in text
    assert 'trustkit_webhook_verdicts_total{action="ALLOW"} 1' in text
    assert 'trustkit_webhook_request_duration_seconds_bucket{path="/validate",le="+Inf"} 3' in text
    assert "# TYPE trustkit_webhook_request_duration_seconds histogram" in text


def _record_relay(port: int) -> tuple[int, list[int]]:
    """A loopback TCP relay in front of ``port`` that notes the length of every TLS record the
    server sends (parsed from the 5-byte record headers, however TCP splits or joins them)."""
    listener = socket.create_server(("127.0.0.1", 0))
    records: list[int] = []

    def pump(source: socket.socket, sink: socket.socket, parse: bool) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
                if parse:
                    pending += chunk
                    while len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[3:5]):
                        records.append(int.from_bytes(pending[3:5]))
                        pending = pending[5 + records[-1] :]
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def accept() -> None:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=pump, args=(client, server, False), daemon=True).start()
        threading.Thread(target=pump, args=(server, client, True), daemon=True).start()
        listener.close()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1], records


def _assert_one_record_per_answer(port: int, ca_path: Path) -> None:
    relay_port, records = _record_relay(port)
    body = json.dumps(sample("01_deployment")).encode()
    request = (
        b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    context = ssl.create_default_context(cafile=str(ca_path))
    with (
        socket.create_connection(("127.0.0.1", relay_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        for attempt in range(3):  # the first also follows the handshake's session tickets
            tls.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}}"):
                answer += tls.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 ") and b'"allowed":true' in answer
            time.sleep(0.2)  # a record sent after the body would have arrived by now
            if attempt == 0:
                seen = len(records)
                continue
            assert len(records) == seen + 1, records
            seen = len(records)


def test_answer_leaves_in_one_tls_record(served: ServedWebhook) -> None:
    """Status line, headers and body in one write: one TLS record (and one send) per answer."""
    _assert_one_record_per_answer(int(served.url.rsplit(":", 1)[1]), served.ca_path)


_SERVE_WITHOUT_SPEEDUPS = """
import json, sys, threading, time

class Blocked:  # as if trustkit[webhook] (uvloop, httptools) were not installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("uvloop", "httptools"):
            raise ImportError(f"{name} is not installed")
        return None

sys.meta_path.insert(0, Blocked())
from pathlib import Path
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from trustkit.verdict import Action, Context, Verdict
from trustkit.webhook import WebhookConfig
from trustkit.webhook.server import bind, build_server

def allow(reference, context):
    return Verdict(reference, context, True, Action.ALLOW, "sha256:" + "ab" * 32)

sock = bind("127.0.0.1", 0)
server = build_server(
    WebhookConfig(), cert=Path(sys.argv[1]), key=Path(sys.argv[2]), checker=allow,
    log_level="warning",
)

def report():
    while not server.started:
        time.sleep(0.01)
    started = {"port": sock.getsockname()[1], "http": AutoHTTPProtocol.__name__}
    print(json.dumps(started | {"uvloop": "uvloop" in sys.modules}), flush=True)

threading.Thread(target=report, daemon=True).start()
server.run(sockets=[sock])
"""


def test_served_without_uvloop_or_httptools(tmp_path: Path, webhook_ca: Any) -> None:
    """uvloop and httptools are optional (``trustkit[webhook]``): without them uvicorn's asyncio
    loop and h11 serve the same answers, each in one TLS record."""
    import subprocess
    import sys

    cert, key = tmp_path / "webhook.crt", tmp_path / "webhook.key"
    webhook_ca.issue(cert, key)
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE_WITHOUT_SPEEDUPS, str(cert), str(key)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline())
        assert started["http"] == "H11Protocol" and started["uvloop"] is False
        url = f"https://127.0.0.1:{started['port']}"
        context = ssl.create_default_context(cafile=str(webhook_ca.ca_path))
        with httpx.Client(base_url=url, verify=context) as client:  # serving: it said so
            reply = client.post("/mutate", json=sample("01_deployment"))
            assert reply.status_code == 200
            assert patch_of(reply.json()["response"])[0]["value"].endswith("@sha256:" + "ab" * 32)
            assert client.post("/validate", content=b"{").status_code == 400
            assert client.get("/validate").status_code == 405
        _assert_one_record_per_answer(started["port"], webhook_ca.ca_path)
    finally:
        child.terminate()
        child.wait(timeout=10)


def test_trust_expiry_metric_follows_each_new_verdict(
    webhook_server: WebhookServerFactory,
) -> None:
    import datetime

    from trustkit.model.evidence import EvidenceSource, TrustEvidence

    def verdict_expiring_in(hours: int) -> Verdict:
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=hours)
        evidence = TrustEvidence(
            source=EvidenceSource.TUF_COLLECTION, checked=True, verified=True, expires=expires
        )
        return Verdict(ALICE, Context.ADMISSION, True, Action.ALLOW, digest(1), evidence=evidence)

    checker = TableChecker({ALICE: verdict_expiring_in(1)})
    # no verdict cache: every review gets a new verdict from the checker
    served = webhook_server(checker, WebhookConfig(cache_ttl_seconds=0))

    def exported() -> int:
        text = served.client().get("/metrics").text
        line = next(x for x in text.splitlines() if x.startswith("trustkit_trust_expiry_seconds{"))
        assert 'collection="docker.io/securesystemsengineering/alice-image"' in line
        return int(line.rsplit(" ", 1)[1])

    post(served, "/validate", sample("01_deployment"))
    post(served, "/validate", sample("01_deployment"))
    assert 3500 < exported() <= 3600
    checker.table[ALICE] = verdict_expiring_in(2)  # re-signed: the next verdict expires later
    post(served, "/validate", sample("01_deployment"))
    assert 7100 < exported() <= 7200
    assert len(checker.calls) == 3


def _served_serial(served: ServedWebhook) -> int:
    port = int(served.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(served.ca_path))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_tls_certificate_reloaded_when_files_change(
    webhook_server: WebhookServerFactory, webhook_ca: Any
) -> None:
    served = webhook_server(TableChecker(table()), tls_interval=0.05)
    before = _served_serial(served)
    served.key_path.write_text("half-written rotation")  # must not break the live pair
    time.sleep(0.2)
    assert _served_serial(served) == before
    new_serial = webhook_ca.issue(served.cert_path, served.key_path)
    for _ in range(100):
        if _served_serial(served) == new_serial:
            break
        time.sleep(0.05)
    assert _served_serial(served) == new_serial
    assert served.client().get("/healthz").status_code == 200


def test_never_pins_to_a_bad_digest(webhook_server: WebhookServerFactory) -> None:
    odd = Verdict(ALICE, Context.ADMISSION, True, Action.ALLOW, "sha256:short")
    served = webhook_server(TableChecker({ALICE: odd}))
    answer = post(served, "/mutate", sample("01_deployment"))
    assert answer["allowed"] is True and "patch" not in answer


# --- through the real pipeline (no registry needed: trust data decides) ----------------------
def test_real_pipeline_refuses_an_unsigned_tag(
    webhook_server: WebhookServerFactory, settings: Any
) -> None:
    from trustkit.webhook import PipelineChecker

    served = webhook_server(PipelineChecker(settings))
    answer = post(served, "/validate", sample("08_job"))
    assert answer["allowed"] is False
    assert "perl" in answer["status"]["message"]
    # policies load in the background while the first review is answered: ready soon after
    client = served.client()
    for _ in range(100):
        if client.get("/readyz").status_code == 200:
            break
        time.sleep(0.05)
    assert client.get("/readyz").status_code == 200
