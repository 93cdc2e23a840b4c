"""Notary v1 numbers: verify one tag from a notary-server (cold and warm) against `notary lookup`,
and migrate a 10,000-tag collection into a TUF store.

    python benchmarks/bench_notary.py [--tags 1000] [--migrate-tags 10000] [--runs 5]

A real in-memory notary-server (Debian's notary 0.7) on loopback. The collections are made by the
notary CLI (`init`, server-managed snapshot) and filled by trustkit's Notary writer in one
publish per signer (the notary CLI would need one changelist entry per tag). Medians of --runs.

- verify, in-process: `trustkit.notary.reader.verify_tag` — the whole collection fetched and
  verified (root, timestamp, snapshot, targets, releases, alice); cold = an empty client cache
  (trust on first use), warm = the cache of the previous run (rollback checks against it);
- `trustkit trust verify` and `notary lookup`, whole process, cold (fresh trust dir) and warm;
- migrate: `trust migrate --from <notary> --to file://…` of the 10,000-tag collection, in-process
  (verify the Notary side, build the TUF collection, sign every tag, verify from a fresh client).
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
from collections.abc import Callable
from functools import partial
from pathlib import Path

from trustkit.config import Settings
from trustkit.keys import KeyStore
from trustkit.notary import reader, writer
from trustkit.pipeline.migrate_notary import _OnlyKeys, migrate_from_notary
from trustkit.services import Services

PASS = "bench-pass-phrase"
NOTARY_ENV = {
    "NOTARY_ROOT_PASSPHRASE": PASS,
    "NOTARY_TARGETS_PASSPHRASE": PASS,
    "NOTARY_SNAPSHOT_PASSPHRASE": PASS,
    "NOTARY_DELEGATION_PASSPHRASE": PASS,
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f}"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def start_notary_server(work: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = _port()
    config = {
        "server": {"http_addr": f"127.0.0.1:{port}"},
        "trust_service": {"type": "local"},
        "storage": {"backend": "memory"},
        "logging": {"level": "error"},
    }
    (work / "server.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        ["notary-server", "-config", str(work / "server.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/_notary_server/health", timeout=1):
                return url, process
        except OSError:
            time.sleep(0.02)
    raise SystemExit("notary-server did not start")


def _notary(url: str, trust_dir: Path, *args: str) -> str:
    done = subprocess.run(
        ["notary", "-s", url, "-d", str(trust_dir), *args],
        env={**os.environ, **NOTARY_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _collection(url: str, work: Path, gun: str, tags: int) -> Settings:
    """gun with ``tags`` tags signed by alice (releases + targets/alice); returns settings whose
    key store holds the targets key and alice's key."""
    cli_dir = work / f"notary-{gun.rpartition('/')[2]}"
    _notary(url, cli_dir, "init", "-p", gun)
    _notary(url, cli_dir, "key", "rotate", gun, "snapshot", "-r")
    os.environ.update(
        SERVIN_CONTENT_TRUST_SERVER=url,
        SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE=PASS,
        SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE=PASS,
    )
    settings = Settings.from_env(trust_dir=work / f"trustkit-{gun.rpartition('/')[2]}")
    keys = KeyStore(settings)
    for path in (cli_dir / "private").glob("*.key"):
        if b"role: targets" in path.read_bytes():
            keys.import_private_pem(path.read_bytes(), role="targets", pem_passphrase=PASS)
    alice = keys.generate(role="delegation", name="alice")
    with Services(settings, keys=keys) as services:
        writer.add_signer(services, gun, keys, "alice", [alice.public_key])
        entries = {
            f"t{i}": ("sha256:" + hashlib.sha256(f"{i}".encode()).hexdigest(), 1000 + i)
            for i in range(tags)
        }
        writer.sign_tags(services, gun, _OnlyKeys(keys, [alice.keyid]), entries)
    return settings


def bench_verify(url: str, work: Path, tags: int, runs: int) -> None:
    gun = f"localhost:5000/bench/verify-{tags}"
    settings = _collection(url, work, gun, tags)
    cold: list[float] = []
    warm: list[float] = []
    for run in range(runs):
        fresh = settings.with_changes(trust_dir=work / f"client-{tags}-{run}")
        with Services(fresh) as services:
            cold.append(_timed(partial(reader.verify_tag, services, gun, "t1")))
            warm.append(_timed(partial(reader.verify_tag, services, gun, "t1")))
    env = {**os.environ, "SERVIN_CONTENT_TRUST_SERVER": url}
    cli_cold: list[float] = []
    cli_warm: list[float] = []
    lookup_cold: list[float] = []
    lookup_warm: list[float] = []
    trustkit = [sys.executable, "-m", "trustkit", "trust", "verify", f"{gun}:t1"]
    for run in range(runs):
        client = work / f"cli-{tags}-{run}"
        env["SERVIN_TRUST_DIR"] = str(client)
        verify = partial(subprocess.run, trustkit, env=dict(env), check=True, capture_output=True)
        cli_cold.append(_timed(verify))
        cli_warm.append(_timed(verify))
        lookup = partial(_notary, url, work / f"lookup-{tags}-{run}", "lookup", gun, "t1")
        lookup_cold.append(_timed(lookup))
        lookup_warm.append(_timed(lookup))
    cells = [cold, warm, cli_cold, cli_warm, lookup_cold, lookup_warm]
    print(f"| {tags:,} | " + " | ".join(_median_ms(c) for c in cells) + " |")


def bench_migrate(url: str, work: Path, tags: int) -> None:
    gun = f"localhost:5000/bench/migrate-{tags}"
    start = time.perf_counter()
    settings = _collection(url, work, gun, tags)
    built = time.perf_counter() - start
    dest = f"file://{work / f'tuf-{tags}'}"
    with Services(settings) as services:
        start = time.perf_counter()
        report = migrate_from_notary(services, gun, url, dest, dry_run=False)
        took = time.perf_counter() - start
    assert report.action == "copied" and len(report.carried) == tags, report.not_carried
    print(f"| {tags:,} | {took:.1f} | {built:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, nargs="+", default=[1000])
    parser.add_argument("--migrate-tags", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("notary-server") is None:
        raise SystemExit("notary-server is not installed (scripts/setup.sh)")
    work = Path(tempfile.mkdtemp(prefix="bench-notary-"))
    url, process = start_notary_server(work)
    try:
        print("| tags | verify cold, in-process (ms) | verify warm, in-process (ms) | "
              "`trustkit trust verify` cold (ms) | warm (ms) | `notary lookup` cold (ms) | "
              "warm (ms) |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for tags in args.tags:
            bench_verify(url, work, tags, args.runs)
        print()
        print(
            "| tags migrated | `trust migrate` Notary → file:// (s) | building the collection (s) |"
        )
        print("| ---: | ---: | ---: |")
        bench_migrate(url, work, args.migrate_tags)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
