"""The webhook under hostile load (issue 14): images hidden in fields the webhook did not look at,
registries that drip bytes, and clients that open connections and never finish a request.

Real webhook over TLS on loopback, the real pipeline and real registries on 127.0.0.1; the slow
"drip" registry is a small socket server (fault injection). Every test bounds its own time.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.pipeline import PipelineWorld
from fixtures.webhook import ServedWebhook, TableChecker, WebhookServerFactory

from trustkit.verdict import Action, Context, Verdict
from trustkit.webhook import PipelineChecker, WebhookConfig
from trustkit.webhook.review import images_to_check, parse_review

SIGNED = "registry.example/team/app:v1"
SIGNED_DIGEST = "sha256:" + "ab" * 32


def allowed_table() -> dict[str, Verdict]:
    return {
        SIGNED: Verdict(SIGNED, Context.ADMISSION, True, Action.ALLOW, SIGNED_DIGEST, reasons=())
    }


def review(kind: str, obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "hostile-1",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "operation": operation,
            "namespace": "default",
            "object": obj,
        },
    }


def pod_spec(volume_image: str, **extra: Any) -> dict[str, Any]:
    return {
        "containers": [{"name": "app", "image": SIGNED}],
        "volumes": [
            {"name": "config", "configMap": {"name": "cfg"}},
            {"name": "models", "image": {"reference": volume_image, "pullPolicy": "Always"}},
        ],
        **extra,
    }


def workload(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` placed where ``kind`` keeps its pod spec."""
    template = {"metadata": {"labels": {"app": "x"}}, "spec": spec}
    if kind == "Pod":
        return {"metadata": {"name": "p"}, "spec": spec}
    if kind == "PodTemplate":
        return {"metadata": {"name": "t"}, "template": template}
    if kind == "CronJob":
        return {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}
    return {"spec": {"template": template}}


def post(served: ServedWebhook, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = served.client(timeout=30).post(path, json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()["response"]
    return answer


# --- image volumes and every image-bearing field ----------------------------------------------
KINDS = [
    "Pod",
    "PodTemplate",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_unsigned_image_volume_is_refused_in_every_workload_kind(
    webhook_server: WebhookServerFactory, kind: str
) -> None:
    served = webhook_server(TableChecker(allowed_table()))
    unsigned = "registry.example/evil/payload:v1"
    answer = post(served, "/validate", review(kind, workload(kind, pod_spec(unsigned))))
    assert answer["allowed"] is False
    assert unsigned in answer["status"]["message"]
    # the signed container alone is allowed: the volume is what was refused
    clean = pod_spec(SIGNED)
    assert post(served, "/validate", review(kind, workload(kind, clean)))["allowed"] is True


@pytest.mark.timeout(60)
def test_image_volume_is_pinned_like_a_container(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(allowed_table()))
    answer = post(served, "/mutate", review("Pod", workload("Pod", pod_spec(SIGNED))))
    assert answer["allowed"] is True
    patch = json.loads(base64.b64decode(answer["patch"]))
    pinned = "registry.example/team/app@" + SIGNED_DIGEST
    assert {"op": "replace", "path": "/spec/volumes/1/image/reference", "value": pinned} in patch
    assert {"op": "replace", "path": "/spec/containers/0/image", "value": pinned} in patch


@pytest.mark.parametrize(
    "spec",
    [
        {"containers": [{"name": "a", "image": SIGNED}], "volumes": {"x": 1}},
        {"containers": [{"name": "a", "image": SIGNED}], "volumes": ["not-an-object"]},
        {"containers": [{"name": "a", "image": SIGNED}], "volumes": [{"name": "v", "image": "x"}]},
        {"containers": [{"name": "a", "image": SIGNED}], "volumes": [{"image": {"reference": 7}}]},
        {"containers": [{"name": "a", "image": ["evil:1"]}]},
    ],
    ids=[
        "volumes-not-list",
        "volume-not-object",
        "image-not-object",
        "reference-not-string",
        "image-not-string",
    ],
)
def test_image_fields_of_the_wrong_shape_are_refused(spec: dict[str, Any]) -> None:
    from trustkit.webhook.review import MalformedReview

    with pytest.raises(MalformedReview):
        images_to_check(parse_review(review("Deployment", workload("Deployment", spec))))


@pytest.mark.parametrize("kind", KINDS)
def test_a_workload_without_a_pod_spec_is_refused_not_skipped(kind: str) -> None:
    from trustkit.webhook.review import MalformedReview

    obj: dict[str, Any] = {"metadata": {"name": "x"}, "spec": "containers: [evil]"}
    with pytest.raises(MalformedReview):
        images_to_check(parse_review(review(kind, obj)))


@pytest.mark.timeout(60)
def test_malformed_volume_denied_over_tls(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(allowed_table()))
    spec = {"containers": [{"name": "a", "image": SIGNED}], "volumes": [{"image": ["evil:1"]}]}
    reply = served.client(timeout=30).post("/validate", json=review("Pod", workload("Pod", spec)))
    # the API server treats a non-200 answer as a failed call: failurePolicy Fail denies the pod
    assert reply.status_code == 400
    assert "volumes/0/image is not an object" in reply.json()["error"]


@pytest.mark.registry
@pytest.mark.timeout(120)
def test_unsigned_image_volume_denied_by_the_real_pipeline(
    webhook_server: WebhookServerFactory, pipeline_world: PipelineWorld
) -> None:
    served = webhook_server(PipelineChecker(pipeline_world.settings))
    signed, unsigned = pipeline_world.ref("noscan"), pipeline_world.ref("unsigned")
    spec = {
        "containers": [{"name": "app", "image": signed}],
        "volumes": [{"name": "data", "image": {"reference": unsigned}}],
    }
    answer = post(served, "/validate", review("Deployment", workload("Deployment", spec)))
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert message.startswith("trustkit refused 1 image(s): ")
    assert unsigned in message and signed not in message


# --- a registry that drips bytes ----------------------------------------------------------------
class DripRegistry:
    """A registry that answers ``/v2/`` and then sends every other answer one byte at a time,
    ``interval`` apart, for ever: each byte arrives well inside any per-read timeout. ``body``
    drips the body of a 200 (headers sent at once), otherwise the headers themselves drip.

    ``open`` counts connections the client has not given up; ``peak`` the most at once."""

    def __init__(self, *, interval: float = 0.2, body: bool = False) -> None:
        self.interval = interval
        self.body = body
        self.open = 0
        self.peak = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.host = f"127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
        try:
            conn.settimeout(30)
            while not self._stop.is_set():
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                self.requests.append(line)
                if line.split(" ")[1] == "/v2/":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    continue
                if self.body:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest"
                        b".v1+json\r\nContent-Length: 1000000\r\n\r\n{"
                    )
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                while not self._stop.is_set():
                    time.sleep(self.interval)
                    conn.sendall(b" ")  # fails once the client has closed: what we wait for
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.open -= 1

    def exchanges(self) -> list[str]:
        """The requests that were dripped (every one but the /v2/ pings)."""
        return [r for r in self.requests if " /v2/ " not in r]

    def wait_all_closed(self, seconds: float) -> bool:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if self.open == 0:
                return True
            time.sleep(0.05)
        return self.open == 0

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


@pytest.fixture
def drip_registry() -> Iterator[Any]:
    started: list[DripRegistry] = []

    def start(**kwargs: Any) -> DripRegistry:
        started.append(DripRegistry(**kwargs))
        return started[-1]

    yield start
    for drip in started:
        drip.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("body", [False, True], ids=["headers", "body"])
def test_a_dripping_registry_times_out_on_the_overall_deadline(
    drip_registry: Any, tmp_path: Path, body: bool
) -> None:
    from trustkit.config import Settings
    from trustkit.errors import UnreachableError
    from trustkit.registry import RegistryClient

    drip = drip_registry(body=body)
    settings = Settings(trust_dir=tmp_path / "trust", config_dir=tmp_path / "config")
    # the per-read timeout (10 s) is never reached: a byte comes every 0.2 s
    client = RegistryClient(settings, drip.host, timeout=10.0, exchange_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(UnreachableError, match="did not answer in time"):
        client.get_manifest("t/app", "v1")
    took = time.monotonic() - started
    assert 1.4 <= took < 2.5, took
    assert drip.wait_all_closed(2.0), "the connection to the dripping registry was kept"
    client.close()


@pytest.mark.timeout(30)
def test_an_ambient_deadline_cuts_every_exchange_short(drip_registry: Any, tmp_path: Path) -> None:
    from trustkit.config import Settings
    from trustkit.errors import UnreachableError
    from trustkit.registry import RegistryClient
    from trustkit.registry.deadline import deadline_at

    drip = drip_registry()
    settings = Settings(trust_dir=tmp_path / "trust", config_dir=tmp_path / "config")
    client = RegistryClient(settings, drip.host, timeout=10.0, exchange_seconds=20.0)
    started = time.monotonic()
    with deadline_at(started + 0.8), pytest.raises(UnreachableError):
        client.get_manifest("t/app", "v1")
    assert time.monotonic() - started < 1.5
    client.close()


@pytest.mark.timeout(30)
def test_connections_to_one_registry_host_are_bounded(drip_registry: Any, tmp_path: Path) -> None:
    from trustkit.config import Settings
    from trustkit.errors import UnreachableError
    from trustkit.registry import RegistryClient
    from trustkit.registry.deadline import deadline_at

    drip = drip_registry()
    settings = Settings(trust_dir=tmp_path / "trust", config_dir=tmp_path / "config")
    client = RegistryClient(settings, drip.host, exchange_seconds=30.0, max_connections=2)
    client.ping()
    errors: list[str] = []
    common = time.monotonic() + 1.5  # one deadline for all, as for the checks of one review

    def fetch(i: int) -> None:
        try:
            with deadline_at(common):
                client.get_manifest(f"t/app{i}", "v1")
        except UnreachableError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - started < 3.0
    assert len(errors) == 6
    # two exchanges reached the registry; the other four waited for a connection, and gave up at
    # their own deadline without ever sending a request
    assert len(drip.exchanges()) == 2, drip.requests
    assert all(drip.host in e for e in errors), errors
    client.close()


@pytest.mark.registry
@pytest.mark.timeout(120)
def test_a_dripping_registry_neither_keeps_threads_nor_starves_other_reviews(
    webhook_server: WebhookServerFactory,
    pipeline_world: PipelineWorld,
    drip_registry: Any,
    tmp_path: Path,
) -> None:
    from fixtures.pipeline import policy_yaml

    drip = drip_registry()
    policy = tmp_path / "scanned.yaml"
    policy.write_text(policy_yaml("scanned", "BLOCK", require_scan=True))
    deadline = 2.0
    config = WebhookConfig(deadline_seconds=deadline, workers=4, registry_concurrency=2)
    # content trust off: the unsigned flood is not refused before the registry is asked; the scan
    # rule makes every check fetch from the image's registry
    settings = pipeline_world.settings.with_changes(content_trust=False)
    served = webhook_server(PipelineChecker(settings, [policy]), config)
    honest = review("Pod", workload("Pod", {"containers": [
        {"name": "app", "image": pipeline_world.ref("clean")}]}))  # fmt: skip
    assert post(served, "/validate", honest)["allowed"] is True  # warm: trust data, policies
    served.state.cache.clear()

    slow = [{"name": f"c{i}", "image": f"{drip.host}/t/slow{i}:v1"} for i in range(8)]
    flood = review("Pod", workload("Pod", {"containers": slow}))
    flood_answers: list[dict[str, Any]] = []
    flood_thread = threading.Thread(
        target=lambda: flood_answers.append(post(served, "/validate", flood))
    )
    flood_thread.start()
    time.sleep(0.3)  # the flood's verifications are running against the dripping registry

    # another review, meanwhile: its image is verified at once, not queued behind the drip
    started = time.monotonic()
    answer = post(served, "/validate", honest)
    assert answer["allowed"] is True, answer
    assert time.monotonic() - started < deadline
    flood_thread.join(10)
    assert flood_answers and flood_answers[0]["allowed"] is False
    # registry_concurrency: two verifications against the host at once; the others never started
    assert 1 <= len(drip.exchanges()) <= 2, drip.requests

    # once the flood was answered, its work is abandoned: no thread, no connection left
    assert drip.wait_all_closed(deadline + 1.0), f"{drip.open} connections still open"
    until = time.monotonic() + 2.0
    while served.state.flights.in_flight() and time.monotonic() < until:
        time.sleep(0.05)
    assert served.state.flights.in_flight() == 0
