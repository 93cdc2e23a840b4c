"""Scan reports and attestations: parse speed/memory and registry round trips.

    python benchmarks/bench_reports.py [--findings 10000] [--runs 5]

1. A Trivy report of N findings (real juice-shop entries repeated) is parsed and normalised with
   ``parse_report`` and, as the floor, loaded with plain ``json.loads``: best-of-runs time and
   peak traced memory (tracemalloc) of each.
2. On a loopback Debian docker-registry: sign + attach one attestation (cosign .att tag and
   referrers fallback index), then fetch + verify it (``verified_scans``).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.cosign import put_tiny_image  # noqa: E402

from trustkit.attest.reports import parse_report  # noqa: E402
from trustkit.attest.service import attest_report, verified_scans  # noqa: E402
from trustkit.config import Settings  # noqa: E402
from trustkit.keys import CryptoSigner  # noqa: E402
from trustkit.registry.location import open_image_location  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "reports" / "securecodebox_juice-shop-v10.2.0.json"


def big_report(findings: int) -> bytes:
    doc = json.loads(SAMPLE.read_bytes())
    entries = [(i, v) for i, r in enumerate(doc["Results"]) for v in r.get("Vulnerabilities") or []]
    results = copy.deepcopy(doc["Results"])
    for r in results:
        r["Vulnerabilities"] = []
    for n in range(findings):
        index, vuln = entries[n % len(entries)]
        results[index]["Vulnerabilities"].append(vuln)
    doc["Results"] = results
    return json.dumps(doc).encode()


def measure(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """(best wall time in ms, peak traced memory in MiB of one run)."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best * 1000, peak / 2**20


@contextlib.contextmanager
def registry() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = Path(tmp) / "config.yml"
        config.write_text(
            f"version: 0.1\nlog: {{level: error}}\n"
            f"storage: {{filesystem: {{rootdirectory: {tmp}/data}}}}\n"
            f"http: {{addr: 127.0.0.1:{port}}}\n"
        )
        proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                        break
                time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    ns = parser.parse_args()

    data = big_report(ns.findings)
    report = parse_report(data)
    assert len(report.findings) == ns.findings
    rows = [
        (
            f"json.loads, {ns.findings} findings ({len(data) / 2**20:.1f} MiB)",
            *measure(lambda: json.loads(data), ns.runs),
        ),
        ("parse_report (json.loads + normalise)", *measure(lambda: parse_report(data), ns.runs)),
    ]

    signer = CryptoSigner.generate_ecdsa()
    alpine = (ROOT / "tests" / "data" / "reports" / "trivy_alpine-39.json").read_bytes()
    with tempfile.TemporaryDirectory() as tmp, registry() as host:
        os.environ["HOME"] = tmp
        settings = Settings(trust_dir=Path(tmp) / "trust", config_dir=Path(tmp) / "cfg")
        times_attach, times_verify = [], []
        for n in range(ns.runs):
            image = f"{host}/bench/app{n}:1"
            location = open_image_location(settings, image)
            put_tiny_image(location, "1", salt=str(n))
            location.close()
            start = time.perf_counter()
            attest_report(settings, image, report_bytes=alpine, signer=signer)
            times_attach.append(time.perf_counter() - start)
            start = time.perf_counter()
            scans, problems = verified_scans(settings, image, trusted_keys=[signer.public_key])
            times_verify.append(time.perf_counter() - start)
            assert len(scans) == 1 and not problems
    nan = float("nan")
    rows.append(("sign + attach one attestation (registry)", min(times_attach) * 1000, nan))
    rows.append(("fetch + verify one attestation (registry)", min(times_verify) * 1000, nan))

    print(f"| operation (best of {ns.runs}) | time (ms) | peak traced memory (MiB) |")
    print("| --- | ---: | ---: |")
    for name, ms, mib in rows:
        mem = "–" if mib != mib else f"{mib:.1f}"
        print(f"| {name} | {ms:.1f} | {mem} |")


if __name__ == "__main__":
    main()
