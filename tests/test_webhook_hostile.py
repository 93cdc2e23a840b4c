"""The webhook under hostile load (issue 14): images hidden in fields the webhook did not look at,
registries that drip bytes, and clients that open connections and never finish a request.

Real webhook over TLS on loopback, the real pipeline and real registries on 127.0.0.1; the slow
"drip" registry is a small socket server (fault injection). Every test bounds its own time.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
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

    def __init__(
        self, *, interval: float = 0.2, body: bool = False, steady: bytes | None = None
    ) -> None:
        self.interval = interval
        self.body = body
        self.steady = steady  # instead of dripping: this body, 16 KiB every ``interval``
        self.open = 0
        self.peak = 0
        self.dripping = 0  # answers being dripped right now
        self.first_drip: float | None = None  # time.monotonic() of the first
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
        dripping = False
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
                if self.steady is not None:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.steady)
                    )
                    for start in range(0, len(self.steady), 16 * 1024):
                        time.sleep(self.interval)
                        conn.sendall(self.steady[start : start + 16 * 1024])
                    continue
                if self.body:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest"
                        b".v1+json\r\nContent-Length: 1000000\r\n\r\n{"
                    )
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                with self._lock:
                    dripping = True
                    self.dripping += 1
                    self.first_drip = self.first_drip or time.monotonic()
                while not self._stop.is_set():
                    time.sleep(self.interval)
                    conn.sendall(b" ")  # fails once the client has closed: what we wait for
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.open -= 1
                self.dripping -= dripping

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
def test_a_slow_but_steady_body_is_not_cut_at_the_exchange_allowance(
    drip_registry: Any, tmp_path: Path
) -> None:
    """The deadline is not a blunt total: a body arriving at a sane rate (160 KiB/s here, over
    the 64 KiB/s floor) may take longer than the allowance to start answering."""
    import hashlib

    from trustkit.config import Settings
    from trustkit.registry import RegistryClient

    payload = bytes(range(256)) * 1200  # 300 KiB: about 2 s at 16 KiB per 0.1 s
    drip = drip_registry(interval=0.1, steady=payload)
    settings = Settings(trust_dir=tmp_path / "trust", config_dir=tmp_path / "config")
    client = RegistryClient(settings, drip.host, exchange_seconds=1.0)
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    started = time.monotonic()
    assert client.get_blob("t/app", digest, max_size=len(payload)) == payload
    assert time.monotonic() - started > 1.5  # longer than the 1 s allowance, and still fine
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
@pytest.mark.parametrize("content_trust", [False, True], ids=["scan-rule", "content-trust"])
def test_a_dripping_registry_neither_keeps_threads_nor_starves_other_reviews(
    webhook_server: WebhookServerFactory,
    pipeline_world: PipelineWorld,
    drip_registry: Any,
    tmp_path: Path,
    content_trust: bool,
) -> None:
    from fixtures.pipeline import policy_yaml

    drip = drip_registry()
    policy = tmp_path / "scanned.yaml"
    policy.write_text(policy_yaml("scanned", "BLOCK", require_scan=True))
    deadline = 3.0
    config = WebhookConfig(deadline_seconds=deadline, workers=4, registry_concurrency=2)
    # content trust on: each image's trust data is read from its own registry (the cache key's
    # trust-data version, then the check); off: the scan rule makes every check fetch from it
    settings = pipeline_world.settings.with_changes(content_trust=content_trust)
    served = webhook_server(PipelineChecker(settings, [policy]), config)
    honest = review("Pod", workload("Pod", {"containers": [
        {"name": "app", "image": pipeline_world.ref("clean")}]}))  # fmt: skip
    assert post(served, "/validate", honest)["allowed"] is True  # warm: trust data, policies
    served.state.cache.clear()

    # the flood: eight reviews at once (more than asyncio's default thread pool holds), each
    # with two images on the dripping registry
    flood_answers: list[dict[str, Any]] = []

    def flood(n: int) -> None:
        slow = [{"name": f"c{i}", "image": f"{drip.host}/t/slow{n}-{i}:v1"} for i in range(2)]
        flood_answers.append(post(served, "/validate", review("Pod", workload("Pod", {
            "containers": slow}))))  # fmt: skip

    flood_threads = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
    most_at_once = 0

    def sample() -> None:  # answers dripped at once, until the first could have been cut off
        nonlocal most_at_once
        while drip.first_drip is None or time.monotonic() < drip.first_drip + 1.0:
            most_at_once = max(most_at_once, drip.dripping)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for thread in flood_threads:
        thread.start()
    time.sleep(0.3)  # the flood's checks are running against the dripping registry

    # another review, meanwhile: its image is verified at once, not queued behind the drip
    started = time.monotonic()
    answer = post(served, "/validate", honest)
    assert answer["allowed"] is True, answer
    assert time.monotonic() - started < deadline
    for thread in flood_threads:
        thread.join(10)
    assert len(flood_answers) == 8 and not any(a["allowed"] for a in flood_answers)
    # registry_concurrency: two checks against the host at once; the others wait, threadless
    sampler.join(10)
    assert most_at_once == 2, (most_at_once, drip.requests)

    # once the flood was answered, its work is abandoned: no thread, no connection left
    assert drip.wait_all_closed(deadline + 1.0), f"{drip.open} connections still open"
    until = time.monotonic() + 2.0
    while served.state.flights.in_flight() and time.monotonic() < until:
        time.sleep(0.05)
    assert served.state.flights.in_flight() == 0


# --- half-open connections (slowloris) ----------------------------------------------------------
def _port(served: ServedWebhook) -> int:
    return int(served.url.rsplit(":", 1)[1])


def _closed_within(sock: socket.socket | ssl.SSLSocket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading only), or None if it stayed open."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (OSError, ssl.SSLError):
            return time.monotonic() - started
    return None


def _tls(served: ServedWebhook) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", _port(served)), timeout=5)
    return served.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.timeout(30)
def test_a_connection_that_never_starts_tls_is_closed(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(allowed_table()), WebhookConfig(request_start_seconds=1))
    silent = socket.create_connection(("127.0.0.1", _port(served)), timeout=5)
    took = _closed_within(silent, 10)  # asyncio's own TLS handshake timeout is 60 s
    assert took is not None and took < 2.5, took
    silent.close()


@pytest.mark.timeout(30)
def test_headers_dripped_a_byte_at_a_time_are_cut_off(webhook_server: WebhookServerFactory) -> None:
    served = webhook_server(TableChecker(allowed_table()), WebhookConfig(request_start_seconds=1))
    sock = _tls(served)
    sock.sendall(b"POST /validate HTTP/1.1\r\nHost: webhook\r\n")
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < 10:
        try:
            sock.sendall(b"X")  # one more header byte every 0.2 s: no read ever waits long
        except OSError:
            closed = True
            break
        if _closed_within(sock, 0.2) is not None:
            closed = True
            break
    took = time.monotonic() - started
    assert closed and took < 2.5, took
    sock.close()


@pytest.mark.timeout(30)
def test_a_dripped_body_is_answered_408_at_the_deadline(
    webhook_server: WebhookServerFactory,
) -> None:
    config = WebhookConfig(request_start_seconds=1, deadline_seconds=1.5)
    served = webhook_server(TableChecker(allowed_table()), config)
    sock = _tls(served)
    sock.sendall(
        b"POST /validate HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    started = time.monotonic()
    answer = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < 10 and b"\r\n\r\n" not in answer:
        try:
            sock.sendall(b" ")
            answer += sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert 1.2 <= took < 2.5, took
    assert _closed_within(sock, 3) is not None  # and the connection is not kept
    sock.close()


@pytest.mark.timeout(30)
def test_an_idle_kept_alive_connection_is_not_mistaken_for_a_slow_one(
    webhook_server: WebhookServerFactory,
) -> None:
    served = webhook_server(TableChecker(allowed_table()), WebhookConfig(request_start_seconds=1))
    sock = _tls(served)
    request = b"GET /healthz HTTP/1.1\r\nHost: webhook\r\n\r\n"
    try:
        for _ in range(2):
            sock.sendall(request)
            sock.settimeout(5)
            answer = b""
            while not answer.endswith(b'{"ok":true}'):
                chunk = sock.recv(4096)
                assert chunk, "the server closed a kept-alive connection"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(1.5)  # idle longer than request_start_seconds, well within keep-alive
    finally:
        sock.close()


@pytest.mark.timeout(60)
def test_two_hundred_half_open_connections_are_reaped_and_healthz_answers(
    webhook_server: WebhookServerFactory,
) -> None:
    served = webhook_server(TableChecker(allowed_table()), WebhookConfig(request_start_seconds=1))
    port = _port(served)
    half_open: list[socket.socket] = []
    try:
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:  # half of them complete TLS and start a request they never finish
                sock = served.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
                sock.sendall(b"POST /validate HTTP/1.1\r\nHost: w\r\n")
            half_open.append(sock)
        assert served.client(timeout=5).get("/healthz").status_code == 200
        # every one of them is closed by the server soon after request_start_seconds
        until = time.monotonic() + 6
        still_open = list(half_open)
        while still_open and time.monotonic() < until:
            still_open = [s for s in still_open if _closed_within(s, 0.01) is None]
        assert not still_open, f"{len(still_open)} of 200 half-open connections still open"
    finally:
        for sock in half_open:
            sock.close()


@pytest.mark.timeout(90)
def test_healthz_answers_under_slowloris_with_a_low_descriptor_limit(
    webhook_ca: Any, tmp_path: Path
) -> None:
    """The reported attack: a webhook limited to 128 descriptors, 200 half-open connections. Past
    the descriptor limit the server cannot even accept a probe, until connections are reaped."""
    import os
    import resource
    import subprocess
    import sys

    import httpx
    from fixtures.registry import free_port

    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    webhook_ca.issue(cert, key)
    config = tmp_path / "webhook.yaml"
    config.write_text("request_start_seconds: 1\n")
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "SERVIN_TRUST_DIR": str(tmp_path / "trust"),
        "SERVIN_CONFIG_DIR": str(tmp_path / "config"),
    }
    env.pop("SERVIN_POLICY_DIR", None)

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    command = [sys.executable, "-m", "trustkit", "webhook", "serve", "--cert", str(cert)]
    command += ["--key", str(key), "--port", str(port), "--config", str(config)]
    server = subprocess.Popen(
        command,
        env=env,
        preexec_fn=low_limit,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ca = ssl.create_default_context(cafile=str(webhook_ca.ca_path))
    half_open: list[socket.socket] = []
    try:
        until = time.monotonic() + 30
        while True:
            try:
                with httpx.Client(verify=ca, timeout=2) as probe:
                    if probe.get(f"https://127.0.0.1:{port}/healthz").status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < until, "did not start"
            time.sleep(0.2)
        for _ in range(200):
            half_open.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        started = time.monotonic()
        answered = None
        while time.monotonic() - started < 20:
            try:
                with httpx.Client(verify=ca, timeout=2) as probe:
                    if probe.get(f"https://127.0.0.1:{port}/healthz").status_code == 200:
                        answered = time.monotonic() - started
                        break
            except httpx.HTTPError:
                time.sleep(0.2)
        # before: unreachable until asyncio's 60 s TLS handshake timeout closed them
        assert answered is not None and answered < 10, answered
    finally:
        for sock in half_open:
            sock.close()
        server.terminate()
        server.wait(10)


# --- the NetworkPolicy in the generated manifests -----------------------------------------------
def _network_policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
    return policy


def test_manifests_carry_a_network_policy_that_validates() -> None:
    import yaml
    from click.testing import CliRunner

    from trustkit.cli import cli

    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    result = CliRunner().invoke(cli, ["webhook", "manifests", "--namespace", "trust-system"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    policy = _network_policy(docs)
    kubernetes_validate.validate(policy, "1.33.0", strict=True)
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    # it selects the webhook's pods, in their namespace, both directions
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert policy["metadata"]["namespace"] == "trust-system"
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # in: the HTTPS port only; out: DNS and the registries' port only
    [ingress] = policy["spec"]["ingress"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": container["ports"][0]["containerPort"]}]
    out_ports = {
        (p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]
    }
    assert out_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}


def test_network_policy_admits_only_the_api_server_when_its_addresses_are_given() -> None:
    from trustkit.webhook.manifests import manifests

    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    policy = _network_policy(
        manifests(api_server_cidrs=["10.0.0.10/32", "10.0.0.11/32"], registry_ports=[443, 5000])
    )
    kubernetes_validate.validate(policy, "1.37.0", strict=True)
    [ingress] = policy["spec"]["ingress"]
    assert ingress["from"] == [
        {"ipBlock": {"cidr": "10.0.0.10/32"}},
        {"ipBlock": {"cidr": "10.0.0.11/32"}},
    ]
    assert {"protocol": "TCP", "port": 5000} in policy["spec"]["egress"][1]["ports"]
    # the validator would notice a broken policy: the check above can fail
    policy["spec"]["ingress"][0]["ports"][0]["port"] = {"not": "a port"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(policy, "1.37.0", strict=True)


@pytest.mark.timeout(30)
def test_the_registry_pool_bounds_connections_per_host(drip_registry: Any, tmp_path: Path) -> None:
    from trustkit.config import Settings
    from trustkit.errors import UnreachableError
    from trustkit.registry.deadline import deadline_at
    from trustkit.registry.pool import RegistryPool

    drip = drip_registry()
    settings = Settings(trust_dir=tmp_path / "trust", config_dir=tmp_path / "config")
    pool = RegistryPool(settings, max_connections_per_host=1)
    client = pool.client(drip.host)
    assert pool.client(drip.host) is client  # one client, so one limit, per host
    client.ping()
    common = time.monotonic() + 1.0
    failures: list[str] = []

    def fetch(i: int) -> None:
        try:
            with deadline_at(common):
                pool.client(drip.host).get_manifest(f"t/app{i}", "v1")
        except UnreachableError as exc:
            failures.append(str(exc))

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    assert drip.dripping == 1  # the other two wait for the host's one connection
    for thread in threads:
        thread.join(10)
    assert len(failures) == 3
    pool.close()
