"""Admission webhook under load on loopback: reviews/s, p50/p99 latency, memory before and after.

    python benchmarks/bench_webhook.py [--requests 5000] [--concurrency 16] [--soak-seconds 600]
    python benchmarks/bench_webhook.py --pipeline --cold-image REF [--cold-image REF ...]
    python benchmarks/bench_webhook.py --real [--rounds 2] [--requests 3000]

The webhook runs in its own process (uvicorn over TLS, the real app, warm verdict cache) and a
bounded asyncio load generator sends a fixed number of AdmissionReviews over keep-alive TLS
connections, then stops. Without ``--pipeline`` the checker is a table (this measures the webhook
itself: HTTP, TLS, JSON, cache); with it, the real ``trustkit.enforce`` pipeline from the
environment's settings decides, and ``--cold-image`` measures each image's first (uncached)
review.

``--real`` builds a real world first: a loopback docker-registry holding three signed images
(trust data in the registry, the default store), each with a verified scan attestation, and a
policy requiring signature, a scan by that scanner key and no fixable CRITICAL finding. It then
serves the same three-image review from the constant checker and from the real pipeline,
alternately (``--rounds``, each round starting with the next contestant), and reports both with
the ratio (goal: real ≥ 80 % of constant, p99 ≤ 10 ms, warm cache), the server's CPU per review
and the load generator's own (it shares the cores with the server). ``--before-root DIR`` (a git
worktree of another revision) adds both checkers served by that revision's trustkit, interleaved
with the others.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "tests" / "data" / "webhook" / "connaisseur_09_dply_multi_image.json"


# --- certificates ---------------------------------------------------------------------------
def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "tls.crt",
        directory / "tls.key",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


# --- the served side (a child process) ------------------------------------------------------
class TableChecker:
    """Allows everything with a fixed digest: the webhook's own cost, not the pipeline's."""

    def __call__(self, reference: str, context: Any) -> Any:
        from trustkit.verdict import Action, Verdict

        return Verdict(reference, context, True, Action.ALLOW, "sha256:" + "ab" * 32)


def serve(cert: Path, key: Path, port_file: Path, pipeline: bool) -> None:
    from trustkit.config import Settings
    from trustkit.services import Services
    from trustkit.webhook import PipelineChecker, WebhookConfig
    from trustkit.webhook.server import bind, build_server

    checker: Any = PipelineChecker(Services(Settings.from_env())) if pipeline else TableChecker()
    sock = bind("127.0.0.1", 0)
    server = build_server(WebhookConfig(), cert=cert, key=key, checker=checker, log_level="error")
    port_file.write_text(str(sock.getsockname()[1]))
    server.run(sockets=[sock])


# --- the load generator ---------------------------------------------------------------------
class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        # the whole head at once, not a line at a time: the load generator shares the cores
        # with the server, so its own cost per review is kept small
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length = 0
        for line in lines:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        self.writer.close()


async def load(
    port: int,
    context: ssl.SSLContext,
    path: str,
    body: bytes,
    *,
    requests: int | None,
    seconds: float | None,
    concurrency: int,
) -> tuple[int, float, list[float]]:
    """Send reviews from ``concurrency`` keep-alive connections until the count or time is up."""
    latencies: list[float] = []
    sent = 0
    stop_at = time.perf_counter() + seconds if seconds else None

    async def worker() -> None:
        nonlocal sent
        conn = await Connection.open(port, context)
        try:
            while True:
                if requests is not None and sent >= requests:
                    return
                if stop_at is not None and time.perf_counter() >= stop_at:
                    return
                sent += 1
                started = time.perf_counter()
                status, payload = await conn.post(path, body)
                latencies.append(time.perf_counter() - started)
                if status != 200 or b'"allowed":true' not in payload:
                    raise RuntimeError(f"unexpected answer {status}: {payload[:200]!r}")
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), time.perf_counter() - started, latencies


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process (robust to a busy shared machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def review_for(image: str) -> bytes:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "cold",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "bench",
            "object": {"spec": {"containers": [{"name": "c", "image": image}]}},
        },
    }
    return json.dumps(body).encode()


async def run(ns: argparse.Namespace, port: int, context: ssl.SSLContext, pid: int) -> None:
    body = SAMPLE.read_bytes()
    rows: list[str] = []
    if ns.cold_image:
        conn = await Connection.open(port, context)
        print("| image (first review, cold) | ms | answer |")
        print("| --- | ---: | --- |")
        for image in ns.cold_image:
            started = time.perf_counter()
            status, payload = await conn.post("/validate", review_for(image))
            took = (time.perf_counter() - started) * 1000
            allowed = json.loads(payload)["response"]["allowed"] if status == 200 else status
            print(f"| `{image}` | {took:.1f} | allowed={allowed} |")
        conn.close()
        print()
    if ns.pipeline:
        return  # warm-cache load is the same code whichever checker filled the cache
    # warm the cache and the connections
    await load(port, context, "/validate", body, requests=200, seconds=None, concurrency=4)
    rss_before = rss_kib(pid)
    for path in ("/validate", "/mutate"):
        cpu_before = cpu_seconds(pid)
        count, elapsed, lat = await load(
            port,
            context,
            path,
            body,
            requests=ns.requests,
            seconds=None,
            concurrency=ns.concurrency,
        )
        rows.append(
            f"| `{path}` ({count} reviews, 3 images each, c={ns.concurrency}) "
            f"| {count / elapsed:,.0f} | {statistics.median(lat) * 1000:.1f} "
            f"| {percentile(lat, 0.99) * 1000:.1f} "
            f"| {(cpu_seconds(pid) - cpu_before) / count * 1e6:.0f} |"
        )
    rss_after_bench = rss_kib(pid)
    soak = ""
    if ns.soak_seconds:
        cpu_before = cpu_seconds(pid)
        count, elapsed, lat = await load(
            port,
            context,
            "/validate",
            body,
            requests=None,
            seconds=ns.soak_seconds,
            concurrency=ns.concurrency,
        )
        rows.append(
            f"| `/validate` sustained {elapsed:.0f} s ({count:,} reviews) "
            f"| {count / elapsed:,.0f} | {statistics.median(lat) * 1000:.1f} "
            f"| {percentile(lat, 0.99) * 1000:.1f} "
            f"| {(cpu_seconds(pid) - cpu_before) / count * 1e6:.0f} |"
        )
        soak = f"; after {elapsed:.0f} s sustained load {rss_kib(pid) / 1024:.1f} MiB"
    head = "| load (warm cache, loopback TLS) | reviews/s | p50 ms | p99 ms | server CPU µs/rev |"
    print(head)
    print("| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print(
        f"\nserver RSS: before load {rss_before / 1024:.1f} MiB; after the bounded runs "
        f"{rss_after_bench / 1024:.1f} MiB{soak}"
    )


# --- the real world (--real) ----------------------------------------------------------------
REAL_PASS = "bench-webhook-pass"


def build_world(base: Path) -> tuple[dict[str, str], list[str], Any]:
    """Three signed, attested images in a loopback registry and a policy; (env, refs, registry)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from fixtures.registry import make_oci_image, start_registry
    from fixtures.reports import retarget

    from trustkit.attest.service import attest_report
    from trustkit.config import Settings
    from trustkit.keys import KeyStore
    from trustkit.pipeline.flows import push_image

    registry = start_registry(base / "registry")
    settings = Settings(
        trust_dir=base / "trust",
        content_trust=True,
        trust_server=None,  # the default: trust data in the image's registry
        root_passphrase=REAL_PASS,
        repository_passphrase=REAL_PASS,
        config_dir=base / "servin",
        policy_dir=base / "policies",
    )
    scanner = KeyStore(settings).generate(role="scanner", name="scanner")
    (base / "policies").mkdir(parents=True)
    (base / "policies" / "default.yaml").write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: default\naction: BLOCK\n"
        'scope: ["**"]\nrules:\n  require_signed: true\n  require_scan: true\n'
        "  max_scan_age: 30d\n  severity: CRITICAL\n  ignore_unfixed: true\n"
        f"  trusted_scanners: [{scanner.keyid}]\n"
    )
    report = HERE.parent / "examples" / "reports" / "clean.trivy.json"
    refs = []
    for name in ("frontend", "backend", "sidecar"):
        image = make_oci_image(base / "layouts" / name, "v1", (4096, 2048), seed=name.encode())
        repo = f"{registry.host}/bench/{name}"
        push_image(settings, image.oci, f"{repo}:v1", sign=True)
        attest_report(
            settings,
            f"{repo}:v1",
            report_bytes=retarget(report.read_bytes(), digest=image.digest, repository=repo),
            report_source=report.name,
            key_name="scanner",
        )
        refs.append(f"{repo}:v1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVIN_")}
    env.update(
        SERVIN_TRUST_DIR=str(settings.trust_dir),
        SERVIN_CONTENT_TRUST="1",
        SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE=REAL_PASS,
        SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE=REAL_PASS,
        SERVIN_CONFIG=str(settings.effective_config_dir),
        SERVIN_POLICY_DIR=str(settings.effective_policy_dir),
        HOME=str(base / "home"),
    )
    return env, refs, registry


def deployment_review(images: list[str]) -> bytes:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "operation": "CREATE",
            "namespace": "bench",
            "object": {
                "kind": "Deployment",
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": f"c{i}", "image": image} for i, image in enumerate(images)
                            ]
                        }
                    }
                },
            },
        },
    }
    return json.dumps(body).encode()


def measure_server(
    pipeline: bool,
    env: dict[str, str],
    body: bytes,
    ns: argparse.Namespace,
    tmp: Path,
    root: Path | None = None,
) -> tuple[float, float, float, float, float]:
    """(reviews/s, p50 ms, p99 ms, server CPU µs/review, load generator CPU µs/review) of one
    server, warm cache; ``root``: the trustkit of another revision serves (a git worktree)."""
    ca, cert, key = make_certs(tmp)
    port_file = tmp / f"port-{time.monotonic_ns()}"
    argv = [sys.executable, __file__, "--serve", str(cert), str(key), str(port_file)]
    if root is not None:
        argv += ["--trustkit-root", str(root)]
    child = subprocess.Popen([*argv, *(["--pipeline"] if pipeline else [])], env=env)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the webhook did not start")
            time.sleep(0.05)
        time.sleep(0.3)
        context = ssl.create_default_context(cafile=str(ca))
        port = int(port_file.read_text())

        async def go() -> tuple[float, float, float, float, float]:
            # fills the cache (the real pipeline verifies each image once) and the connections
            await load(port, context, "/validate", body, requests=300, seconds=None, concurrency=4)
            cpu = cpu_seconds(child.pid)
            own_cpu = time.process_time()
            count, elapsed, lat = await load(
                port,
                context,
                "/validate",
                body,
                requests=ns.requests,
                seconds=None,
                concurrency=ns.concurrency,
            )
            return (
                count / elapsed,
                statistics.median(lat) * 1000,
                percentile(lat, 0.99) * 1000,
                (cpu_seconds(child.pid) - cpu) / count * 1e6,
                (time.process_time() - own_cpu) / count * 1e6,
            )

        return asyncio.run(go())
    finally:
        child.terminate()
        child.wait(timeout=10)


def run_real(ns: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env, refs, registry = build_world(base / "world")
        try:
            body = deployment_review(refs)
            contestants: list[tuple[str, bool, Path | None]] = [
                ("constant (table)", False, None),
                ("real pipeline", True, None),
            ]
            if ns.before_root is not None:  # both checkers on the other revision too
                contestants.append(("constant (table), before", False, ns.before_root))
                contestants.append(("real pipeline, before", True, ns.before_root))
            results: dict[str, list[tuple[float, float, float, float, float]]] = {
                label: [] for label, *_ in contestants
            }
            for round_ in range(ns.rounds):
                # interleaved (the same machine load), and each round starts with the next
                # contestant, so none is always measured first or right after the same one
                shift = round_ % len(contestants)
                for label, pipeline, root in contestants[shift:] + contestants[:shift]:
                    results[label].append(measure_server(pipeline, env, body, ns, base, root))
        finally:
            registry.stop()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {loop_name()}, ", end="")
    print(f"load average {os.getloadavg()[0]:.1f}; {ns.requests} reviews x {ns.rounds} rounds")
    print(
        "\n| checker (warm cache, 3 images per review) | reviews/s | p50 ms | p99 ms (runs) "
        "| server CPU µs/rev | load generator CPU µs/rev |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    medians = {}
    for label, rows in results.items():
        med = tuple(statistics.median(r[i] for r in rows) for i in range(5))
        medians[label] = med
        runs = ", ".join(f"{r[0]:,.0f}" for r in rows)
        p99s = ", ".join(f"{r[2]:.1f}" for r in rows)
        print(
            f"| {label} (runs: {runs}) | {med[0]:,.0f} | {med[1]:.1f} | {med[2]:.1f} ({p99s}) "
            f"| {med[3]:.0f} | {med[4]:.0f} |"
        )
    for label in medians:
        if label.startswith("real"):
            constant = label.replace("real pipeline", "constant (table)")
            ratio = medians[label][0] / medians[constant][0]
            print(f"\n{label} / {constant} reviews/s: {ratio:.0%} (goal ≥ 80 %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--soak-seconds", type=float, default=0.0)
    parser.add_argument("--pipeline", action="store_true", help="use trustkit.enforce")
    parser.add_argument("--cold-image", action="append", default=[])
    parser.add_argument("--real", action="store_true", help="real world vs constant checker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before-root", type=Path, default=None, help="another revision")
    parser.add_argument("--trustkit-root", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve", nargs=3, metavar=("CERT", "KEY", "PORTFILE"), help=argparse.SUPPRESS
    )
    ns = parser.parse_args()
    if ns.serve:
        if ns.trustkit_root is not None:  # another revision's trustkit, not the editable install
            sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
            sys.path.insert(0, str(ns.trustkit_root))
        serve(Path(ns.serve[0]), Path(ns.serve[1]), Path(ns.serve[2]), ns.pipeline)
        return
    if ns.real:
        run_real(ns)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ca, cert, key = make_certs(Path(tmp))
        port_file = Path(tmp) / "port"
        argv = [sys.executable, __file__, "--serve", str(cert), str(key), str(port_file)]
        child = subprocess.Popen([*argv, *(["--pipeline"] if ns.pipeline else [])])
        try:
            deadline = time.monotonic() + 20
            while not port_file.exists() or not port_file.read_text():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the webhook did not start")
                time.sleep(0.05)
            time.sleep(0.3)  # uvicorn startup after bind
            context = ssl.create_default_context(cafile=str(ca))
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {loop_name()}\n")
            asyncio.run(run(ns, int(port_file.read_text()), context, child.pid))
        finally:
            child.terminate()
            child.wait(timeout=10)


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401

        return "uvloop available"
    except ImportError:
        return "asyncio event loop, h11 (no uvloop/httptools installed)"


if __name__ == "__main__":
    main()
