"""Trust engine numbers (in-process), against the real notary CLI doing the same work.

    python benchmarks/bench_trust.py [--tags 1000 10000] [--verify-runs 200]

- `trust sign` of one tag into a collection already holding N tags (signer alice: two roles).
- `trust verify` of one tag with a warm cache (goal ≤ 5 ms): the same process again, and a new
  client session over the on-disk cache (full ngclient refresh).
- The peer: `notary addhash` + `notary publish` and `notary lookup` against an in-memory
  notary-server on loopback, one tag into a fresh collection (whole-process, as notary is used).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from trustkit.collections import add_signer, sign_tag, sign_tags, verify_tag
from trustkit.collections.client import forget_sessions
from trustkit.config import Settings
from trustkit.keys import KeyStore
from trustkit.refs import parse


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.2f}"


def bench_collection(tags: int, verify_runs: int) -> dict[str, str]:
    work = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    try:
        settings = Settings(
            trust_dir=work / "trust",
            content_trust=True,
            root_passphrase="bench-root-pass",
            repository_passphrase="bench-repo-pass",
        )
        store = KeyStore(settings)
        alice = store.generate(role="delegation", name="alice")
        repo = parse("localhost:5000/bench/app", default_tag=False)
        add_signer(settings, repo.gun, "alice", [alice.public_key], keystore=store)
        sign_tags(
            settings,
            repo.gun,
            {f"t{i}": (_digest(f"t{i}"), 1000 + i) for i in range(tags)},
            keystore=store,
        )
        signs = []
        for i in range(5):
            start = time.perf_counter()
            sign_tag(
                settings, repo.with_tag(f"new{i}"), digest=_digest(f"n{i}"), size=1, keystore=store
            )
            signs.append(time.perf_counter() - start)
        ref = repo.with_tag("t1")
        verify_tag(settings, ref)  # warm
        warm = []
        for _ in range(verify_runs):
            start = time.perf_counter()
            verify_tag(settings, ref)
            warm.append(time.perf_counter() - start)
        cold_session = []
        for _ in range(5):
            forget_sessions()
            start = time.perf_counter()
            verify_tag(settings, ref)
            cold_session.append(time.perf_counter() - start)
        env = dict(
            os.environ,
            SERVIN_TRUST_DIR=str(settings.trust_dir),
            SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE="bench-root-pass",
        )
        process = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "trustkit", "trust", "verify", str(ref)],
                env=env,
                check=True,
                capture_output=True,
            )
            process.append(time.perf_counter() - start)
        return {
            "process": _ms(process),
            "tags": f"{tags:,}",
            "sign": _ms(signs),
            "verify_warm": _ms(warm),
            "verify_refresh": _ms(cold_session),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_notary() -> dict[str, str] | None:
    if shutil.which("notary-server") is None or shutil.which("notary") is None:
        return None
    work = Path(tempfile.mkdtemp(prefix="bench-notary-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (work / "server.json").write_text(
        json.dumps(
            {
                "server": {"http_addr": f"127.0.0.1:{port}"},
                "trust_service": {"type": "local"},
                "storage": {"backend": "memory"},
                "logging": {"level": "error"},
            }
        )
    )
    server = subprocess.Popen(
        ["notary-server", "-config", str(work / "server.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_notary_server/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        env = dict(
            os.environ,
            NOTARY_ROOT_PASSPHRASE="bench-root-pass",
            NOTARY_TARGETS_PASSPHRASE="bench-repo-pass",
            NOTARY_SNAPSHOT_PASSPHRASE="bench-repo-pass",
        )
        base = ["notary", "-s", f"http://127.0.0.1:{port}", "-d", str(work / "trust")]
        gun = "localhost:5000/bench/app"
        subprocess.run([*base, "init", "-p", gun], env=env, check=True, capture_output=True)
        signs, lookups = [], []
        for i in range(5):
            start = time.perf_counter()
            subprocess.run(
                [*base, "addhash", "-p", gun, f"v{i}", "16", "--sha256", _digest(f"v{i}")[7:]],
                env=env,
                check=True,
                capture_output=True,
            )
            signs.append(time.perf_counter() - start)
        for _ in range(10):
            start = time.perf_counter()
            subprocess.run([*base, "lookup", gun, "v1"], env=env, check=True, capture_output=True)
            lookups.append(time.perf_counter() - start)
        return {"sign": _ms(signs), "lookup": _ms(lookups)}
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


COLUMNS = ("tags", "sign", "verify_warm", "verify_refresh", "process")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--verify-runs", type=int, default=200)
    ns = parser.parse_args()
    print(
        "| tags in collection | sign one tag (ms) | verify, warm (ms) "
        "| verify, new session over disk cache (ms) | `trustkit trust verify`, whole process (ms) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in ns.tags:
        row = bench_collection(n, ns.verify_runs)
        print("| " + " | ".join(row[k] for k in COLUMNS) + " |")
    peer = bench_notary()
    if peer:
        print()
        print("| peer: notary 0.7 CLI + in-memory notary-server, whole process | ms |")
        print("| --- | ---: |")
        print(f"| `notary addhash -p` (sign + publish one tag) | {peer['sign']} |")
        print(f"| `notary lookup` (verify one tag, fresh process) | {peer['lookup']} |")


if __name__ == "__main__":
    main()
