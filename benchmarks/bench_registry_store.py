"""The registry store (trust data in the image's own repository) at 1,000 and 10,000 tags.

    python benchmarks/bench_registry_store.py [--tags 1000 10000] [--runs 5] [--settle 0.5]
        [--notary]

Against Debian's docker-registry 2.8 on loopback, in-process, medians of ``--runs``, for the DCT
layout (every tag in targets/releases and the signer's role) and hashed bins:

- publish one tag (``sign_tag``: load, sign, claim, settle, move the head): time, registry round
  trips, bytes sent and received; the claim's ``settle`` wait is part of the time and shown apart;
- cold verify of one tag: a client with an empty trust dir and a new connection pool (nothing
  shared but the registry): time, requests and sequential round trips (the store fetches
  independent blobs in parallel: a batch counts once), bytes received;
- warm verify of one tag: the same client again in the same process (its verified session is
  reused after one timestamp read), and after one more tag was published elsewhere.

With ``--notary``, notary 0.7 does the same work at each N beside it (``bench_trust.NotaryCase``:
an in-memory notary-server on loopback, the N tags signed by alice into ``targets/releases`` and
``targets/alice``), interleaved within every run: ``notary addhash -p`` adds one tag to both
delegations, trustkit publishes one, trustkit verifies cold (and warm), ``notary lookup`` runs
with an empty trust dir (cold) and again with the same one (warm). The table adds notary's
medians (over the runs of every layout at that N) and trustkit ÷ notary. notary's times are
whole CLI processes (a Go binary: no interpreter start-up to speak of), trustkit's in-process.

Goal (issue 10): cold verify of one tag at 10,000 tags <= 50 ms in-process on loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_trust import NotaryCase  # notary 0.7 doing trustkit's work (same delegations)

from trustkit.collections import add_signer, sign_tag, sign_tags, verify_tag
from trustkit.collections.client import forget_sessions
from trustkit.collections.engine import use_bins
from trustkit.config import Settings
from trustkit.keys import KeyStore
from trustkit.refs import parse
from trustkit.registry import client as registry_client
from trustkit.services import Services

PASS = "bench-pass"


@dataclass
class Traffic:
    requests: int = 0
    #: sequential round trips: requests that started while none was in flight (requests the
    #: store sends in parallel wait for one round trip, not one each)
    rounds: int = 0
    sent: int = 0
    received: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


_TRAFFIC: list[Traffic] = []
#: the store fetches independent blobs in parallel: counted under a lock
_COUNT_LOCK = threading.Lock()
_IN_FLIGHT = [0]


@contextmanager
def counted() -> Iterator[Traffic]:
    traffic = Traffic()
    _TRAFFIC.append(traffic)
    try:
        yield traffic
    finally:
        _TRAFFIC.remove(traffic)


def _install_counter() -> None:
    original = registry_client.RegistryClient._send

    def send(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        with _COUNT_LOCK:
            if _IN_FLIGHT[0] == 0:
                for traffic in _TRAFFIC:
                    traffic.rounds += 1
            _IN_FLIGHT[0] += 1
        try:
            response = original(self, method, url, *args, **kwargs)
        finally:
            with _COUNT_LOCK:
                _IN_FLIGHT[0] -= 1
        with _COUNT_LOCK:
            _count(method, url, response, kwargs)
        return response

    def _count(method: str, url: Any, response: Any, kwargs: dict[str, Any]) -> None:
        for traffic in _TRAFFIC:
            traffic.requests += 1
            path = str(url)
            what = "manifest" if "/manifests/" in path else "blob" if "/blobs/" in path else "other"
            kind = f"{method} {what}"
            traffic.by_kind[kind] = traffic.by_kind.get(kind, 0) + 1
            length = response.headers.get("Content-Length", "0")
            traffic.received += int(length) if length.isdigit() else 0
            content = kwargs.get("content")
            if callable(content):
                body = content()
                traffic.sent += len(body) if isinstance(body, bytes) else 0

    registry_client.RegistryClient._send = send  # type: ignore[method-assign]


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {work / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class NotarySamples:
    """notary's times (seconds) and cold-lookup metadata bytes at one N, over all layouts' runs."""

    publish: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    cold_bytes: list[int] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)


def _notary_lookups(notary: NotaryCase, samples: NotarySamples) -> None:
    """notary's verify beside trustkit's: ``lookup`` with an empty trust dir, then again with
    the same one."""
    client = len(samples.cold)
    elapsed, cached = notary.cold_verify(client)
    samples.cold.append(elapsed)
    samples.cold_bytes.append(cached)
    samples.warm.append(notary.warm_verify(client))


def bench(
    host: str,
    work: Path,
    tags: int,
    layout: str,
    runs: int,
    settle: float,
    notary: tuple[NotaryCase, NotarySamples] | None = None,
) -> dict[str, Any]:
    url = f"registry://?settle={settle}"
    settings = Settings(
        trust_dir=work / f"writer-{tags}-{layout}",
        content_trust=True,
        trust_server=url,
        root_passphrase=PASS,
        repository_passphrase=PASS,
    )
    keystore = KeyStore(settings)
    alice = keystore.generate(role="delegation", name="alice")
    repo = parse(f"{host}/bench/{layout}-{tags}", default_tag=False)
    writer = Services(settings, keys=keystore)
    add_signer(writer, repo.gun, "alice", [alice.public_key])
    if layout == "bins":
        use_bins(writer, repo.gun)
    sign_tags(writer, repo.gun, {f"t{i}": (_digest(f"t{i}"), 1000 + i) for i in range(tags)})
    sign_tag(writer, repo.with_tag("warmup"), digest=_digest("warmup"), size=1)

    publish_ms, publish_rt, publish_sent, publish_recv = [], [], [], []
    cold_rounds: list[int] = []
    cold_ms, cold_rt, cold_bytes, warm_ms, warm_rt, after_ms, after_rt = [], [], [], [], [], [], []
    # one run: notary publishes, trustkit publishes, trustkit verifies, notary verifies (the two
    # see the same machine load, and each side verifies after a publish of its own; a trustkit
    # verify started right after notary's publish of N tags shares the cores with notary-server
    # still settling that publish, which slows it by 10-20 ms at 10,000 tags)
    for run in range(runs):
        if notary is not None:
            notary[1].publish.append(notary[0].sign_once())
        with counted() as traffic:
            start = time.perf_counter()
            sign_tag(writer, repo.with_tag(f"new{run}"), digest=_digest(f"new{run}"), size=1)
            publish_ms.append((time.perf_counter() - start) * 1000)
        publish_rt.append(traffic.requests)
        publish_sent.append(traffic.sent)
        publish_recv.append(traffic.received)

        client_settings = settings.with_changes(trust_dir=work / f"client-{tags}-{layout}-{run}")
        forget_sessions()
        with Services(client_settings) as client:
            with counted() as traffic:
                start = time.perf_counter()
                target = verify_tag(client, repo.with_tag("t1"))
                cold_ms.append((time.perf_counter() - start) * 1000)
            assert target.digest == _digest("t1")
            cold_rt.append(traffic.requests)
            cold_rounds.append(traffic.rounds)
            cold_bytes.append(traffic.received)
            with counted() as traffic:
                start = time.perf_counter()
                verify_tag(client, repo.with_tag("t1"))
                warm_ms.append((time.perf_counter() - start) * 1000)
            warm_rt.append(traffic.requests)
            if notary is not None:
                _notary_lookups(*notary)
            sign_tag(writer, repo.with_tag(f"more{run}"), digest=_digest("m"), size=1)
            with counted() as traffic:
                start = time.perf_counter()
                verify_tag(client, repo.with_tag("t1"))
                after_ms.append((time.perf_counter() - start) * 1000)
            after_rt.append(traffic.requests)
    return {
        "tags": tags,
        "layout": layout,
        "publish_ms": _median(publish_ms),
        "publish_settle_ms": settle * 1000,
        "publish_round_trips": _median(publish_rt),
        "publish_sent": _median(publish_sent),
        "publish_received": _median(publish_recv),
        "cold_ms": _median(cold_ms),
        "cold_round_trips": _median(cold_rt),
        "cold_sequential": _median(cold_rounds),
        "cold_bytes": _median(cold_bytes),
        "warm_ms": _median(warm_ms),
        "warm_round_trips": _median(warm_rt),
        "after_publish_ms": _median(after_ms),
        "after_publish_round_trips": _median(after_rt),
    }


def _ratio(trustkit_ms: float, notary_s: list[float]) -> str:
    notary_ms = _median(notary_s) * 1000
    return f"{trustkit_ms / notary_ms:.2f}×" if notary_ms else "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--layouts", nargs="+", default=["dct", "bins"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=0.5)
    parser.add_argument(
        "--notary", action="store_true", help="notary 0.7 at the same N, interleaved"
    )
    args = parser.parse_args()
    if args.notary and not (shutil.which("notary") and shutil.which("notary-server")):
        raise SystemExit("--notary: notary and notary-server are not installed (scripts/setup.sh)")
    _install_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-registry-store-"))
    proc, host = start_registry(work)
    rows: list[dict[str, Any]] = []
    notary_rows: dict[int, NotarySamples] = {}
    try:
        for n in args.tags:
            notary: tuple[NotaryCase, NotarySamples] | None = None
            if args.notary:
                (work / f"notary-{n}").mkdir()
                notary = (NotaryCase.build(work / f"notary-{n}", n), NotarySamples())
                notary_rows[n] = notary[1]
            try:
                rows += [
                    bench(host, work, n, layout, args.runs, args.settle, notary)
                    for layout in args.layouts
                ]
            finally:
                if notary is not None:
                    notary[0].close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print(
        "| tags | layout | publish one tag (of which settle) | publish round trips, KiB sent / "
        "received | cold verify | cold requests (sequential), KiB received "
        "| warm verify (round trips) "
        "| warm after a publish (round trips) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['tags']:,} | {r['layout']} "
            f"| {r['publish_ms']:.0f} ms ({r['publish_settle_ms']:.0f}) "
            f"| {r['publish_round_trips']:.0f}, {r['publish_sent'] / 1024:.1f} / "
            f"{r['publish_received'] / 1024:.1f} | {r['cold_ms']:.1f} ms "
            f"| {r['cold_round_trips']:.0f} ({r['cold_sequential']:.0f}), "
            f"{r['cold_bytes'] / 1024:.1f} "
            f"| {r['warm_ms']:.2f} ms ({r['warm_round_trips']:.0f}) "
            f"| {r['after_publish_ms']:.1f} ms ({r['after_publish_round_trips']:.0f}) |"
        )
    if not notary_rows:
        return
    print()
    print(
        "notary 0.7 at the same N (same delegations, interleaved; whole CLI processes), "
        "and trustkit ÷ notary:"
    )
    print()
    print(
        "| tags | layout | notary addhash -p | publish, trustkit ÷ notary "
        "| notary lookup cold, KiB cached | cold verify, trustkit ÷ notary "
        "| notary lookup warm | warm verify, trustkit ÷ notary |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        samples = notary_rows[r["tags"]]
        print(
            f"| {r['tags']:,} | {r['layout']} "
            f"| {_median(samples.publish) * 1000:.0f} ms "
            f"| {_ratio(r['publish_ms'], samples.publish)} "
            f"| {_median(samples.cold) * 1000:.1f} ms, "
            f"{_median(samples.cold_bytes) / 1024:.1f} "
            f"| {_ratio(r['cold_ms'], samples.cold)} "
            f"| {_median(samples.warm) * 1000:.1f} ms | {_ratio(r['warm_ms'], samples.warm)} |"
        )


if __name__ == "__main__":
    main()
