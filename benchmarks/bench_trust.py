"""Trust engine numbers at 1,000 / 10,000 / 100,000 tags, against notary 0.7 at the same N.

    python benchmarks/bench_trust.py [--tags 1000 10000 100000] [--runs 5] [--no-notary]

For each N, interleaved (one trustkit run, one notary run, again), medians of ``--runs``:

- sign one tag into a collection of N tags, in-process (trustkit, DCT layout and hashed bins;
  signer alice: releases plus alice's own record) and whole-process ``notary addhash -p``
  (stage + publish; notary 0.7 CLI against an in-memory notary-server on loopback);
- cold verify of one tag: a client with an empty cache, in-process (trustkit), bytes read from
  the store; whole-process ``notary lookup`` with an empty trust dir, bytes of metadata it
  cached;
- for bins at the largest N: the local store's size after 100 signs, against one version set
  (the files the current snapshot names, plus every root and the current timestamp);
- the share of a cold verify spent in canonical JSON (securesystemslib's encode_canonical).

The notary collection does the same work as trustkit's DCT layout: signer alice's key
(ECDSA P-256, a self-signed certificate) is a delegation key of ``targets/releases`` and
``targets/alice`` (all paths) and is imported into the notary trust dir; the N tags are in both
delegations (written as 2N changelist entries, then one ``notary publish``; ``targets`` itself
holds none), ``addhash -p`` adds one tag to both, and ``lookup`` finds a tag through them. The
snapshot key is the client's (``notary init`` without ``key rotate -r``), so notary's publish
signs targets/releases, targets/alice and snapshot, as trustkit's signs releases, alice,
snapshot and timestamp.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import datetime
import hashlib
import json
import os
import pstats
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_notary import start_notary_server  # the same notary-server set-up

from trustkit.collections import add_signer, sign_tag, sign_tags, verify_tag
from trustkit.collections.client import forget_sessions
from trustkit.collections.engine import use_bins
from trustkit.config import Settings
from trustkit.keys import KeyStore
from trustkit.refs import ImageRef, parse
from trustkit.services import Services
from trustkit.stores import LocalDirStore, escape_gun

GUN = "localhost:5000/bench/app"
PASS = "bench-pass"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class CountingStore(LocalDirStore):
    """The local store, counting what a client reads from it."""

    bytes_read = 0

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        data = super().read(gun, role, version, limit=limit)
        self.bytes_read += len(data)
        return data


@dataclass
class TrustkitCase:
    work: Path
    settings: Settings
    keystore: KeyStore
    repo: ImageRef
    layout: str
    signed: int = 0

    @classmethod
    def build(cls, work: Path, tags: int, layout: str) -> TrustkitCase:
        settings = Settings(
            trust_dir=work / "trust",
            content_trust=True,
            trust_server="local",
            root_passphrase=PASS,
            repository_passphrase=PASS,
        )
        keystore = KeyStore(settings)
        alice = keystore.generate(role="delegation", name="alice")
        repo = parse(GUN, default_tag=False)
        add_signer(settings, repo.gun, "alice", [alice.public_key], keystore=keystore)
        if layout == "bins":
            use_bins(settings, repo.gun, keystore=keystore)
        entries = {f"t{i}": (_digest(f"t{i}"), 1000 + i) for i in range(tags)}
        sign_tags(settings, repo.gun, entries, keystore=keystore)
        case = cls(work, settings, keystore, repo, layout)
        case.sign_once()  # keys unlocked once, as a process signing many tags does
        return case

    def sign_once(self) -> float:
        self.signed += 1
        tag = f"new{self.signed}"
        start = time.perf_counter()
        sign_tag(
            self.settings,
            self.repo.with_tag(tag),
            digest=_digest(tag),
            size=1,
            keystore=self.keystore,
        )
        return time.perf_counter() - start

    def cold_verify(self, run: int) -> tuple[float, int]:
        client = self.settings.with_changes(trust_dir=self.work / f"client-{run}")
        store = CountingStore(self.settings.local_server_dir)
        services = Services(client, store=store, keys=KeyStore(client))
        forget_sessions()
        start = time.perf_counter()
        verify_tag(services, self.repo.with_tag("t1"))
        return time.perf_counter() - start, store.bytes_read

    def canonical_share(self) -> float:
        profile = cProfile.Profile()
        profile.enable()
        self.cold_verify(999)
        profile.disable()
        stats = pstats.Stats(profile)
        total = stats.total_tt  # type: ignore[attr-defined]
        canonical = sum(
            row[3]  # cumulative time
            for func, row in stats.stats.items()  # type: ignore[attr-defined]
            if func[2] == "encode_canonical"
        )
        return canonical / total if total else 0.0

    def store_bytes(self) -> tuple[int, int]:
        """(bytes in the store's collection directory, bytes of one version set)."""
        directory = self.settings.local_server_dir / escape_gun(self.repo.gun)
        on_disk = sum(p.stat().st_size for p in directory.glob("*.json"))
        store = LocalDirStore(self.settings.local_server_dir)
        gun = self.repo.gun
        one_set = sum(
            len(store.read(gun, "root", v, limit=1 << 20))
            for v in range(1, store.root_version(gun) + 1)
        )
        timestamp = json.loads(store.read(gun, "timestamp", None, limit=1 << 16))
        one_set += len(store.read(gun, "timestamp", None, limit=1 << 16))
        snap_version = timestamp["signed"]["meta"]["snapshot.json"]["version"]
        snapshot_raw = store.read(gun, "snapshot", snap_version, limit=1 << 26)
        one_set += len(snapshot_raw)
        for name, meta in json.loads(snapshot_raw)["signed"]["meta"].items():
            one_set += len(store.read(gun, name[: -len(".json")], meta["version"], limit=1 << 28))
        return on_disk, one_set


#: trustkit's signer layout: alice signs into releases and into her own role
NOTARY_DELEGATIONS = ("targets/releases", "targets/alice")


def _delegation_key(work: Path) -> tuple[Path, Path]:
    """alice's delegation key (ECDSA P-256) and a self-signed certificate for it, as PEM files,
    the form `notary delegation add` and `notary key import` take."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = work / "alice.key", work / "alice.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _listed(listing: str, role: str) -> set[str]:
    """The tag names `notary list` shows as signed by ``role`` (rows: name, digest, size, role)."""
    rows = (line.split() for line in listing.splitlines()[2:])
    return {row[0] for row in rows if len(row) == 4 and row[3] == role}


@dataclass
class NotaryCase:
    """notary 0.7 (CLI against an in-memory notary-server on loopback) doing trustkit's work: the
    N tags signed by alice into ``targets/releases`` and ``targets/alice`` (both delegations with
    her key, all paths), one tag added to both with ``notary addhash -p``, and a cold
    ``notary lookup`` that finds the tag through the delegations."""

    work: Path
    server: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    signed: int = 0

    def cli(self, trust_dir: Path, *args: str) -> str:
        done = subprocess.run(
            ["notary", "-s", self.url, "-d", str(trust_dir), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    @classmethod
    def build(cls, work: Path, tags: int) -> NotaryCase:
        url, server = start_notary_server(work)  # in-memory notary-server on loopback
        env = dict(
            os.environ,
            NOTARY_ROOT_PASSPHRASE=PASS,
            NOTARY_TARGETS_PASSPHRASE=PASS,
            NOTARY_SNAPSHOT_PASSPHRASE=PASS,
            NOTARY_DELEGATION_PASSPHRASE=PASS,
        )
        case = cls(work, server, url, env)
        try:
            case._fill(tags)
        except BaseException:
            case.close()
            raise
        return case

    def _fill(self, tags: int) -> None:
        trust = self.work / "trust"
        self.cli(trust, "init", "-p", GUN)
        key_path, cert_path = _delegation_key(self.work)
        for role in NOTARY_DELEGATIONS:
            self.cli(trust, "delegation", "add", "-p", GUN, role, str(cert_path), "--all-paths")
        self.cli(trust, "key", "import", str(key_path), "-r", "delegation")
        # N staged additions to each delegation, exactly as `notary addhash -r` writes them,
        # then one publish (the CLI would otherwise publish once per tag)
        changelist = trust / "tuf" / GUN / "changelist"
        changelist.mkdir(parents=True, exist_ok=True)
        stamp = time.time_ns()
        for i in range(tags):
            meta = {
                "length": 1000 + i,
                "hashes": {
                    "sha256": base64.b64encode(hashlib.sha256(f"t{i}".encode()).digest()).decode()
                },
            }
            data = base64.b64encode(json.dumps(meta).encode()).decode()
            for index, role in enumerate(NOTARY_DELEGATIONS):
                change = {
                    "action": "create",
                    "role": role,
                    "type": "target",
                    "path": f"t{i}",
                    "data": data,
                }
                name = f"{stamp + 2 * i + index:020d}_{uuid.uuid4()}.change"
                (changelist / name).write_text(json.dumps(change))
        self.cli(trust, "publish", GUN)
        expected = {f"t{i}" for i in range(tags)}
        for role in NOTARY_DELEGATIONS:  # the tags are in both delegations, not in targets
            if _listed(self.cli(trust, "list", GUN, "-r", role), role) != expected:
                raise SystemExit(f"notary: {role} does not hold the {tags} tags")
        if _listed(self.cli(trust, "list", GUN, "-r", "targets"), "targets"):
            raise SystemExit("notary: tags landed in targets, not only in the delegations")

    def sign_once(self) -> float:
        self.signed += 1
        tag = f"new{self.signed}"
        roles = [arg for role in NOTARY_DELEGATIONS for arg in ("-r", role)]
        args = ["addhash", "-p", GUN, tag, "1", "--sha256", _digest(tag)[7:], *roles]
        start = time.perf_counter()
        self.cli(self.work / "trust", *args)
        return time.perf_counter() - start

    def lookup(self, trust_dir: Path) -> float:
        """One ``notary lookup`` of t1 with ``trust_dir`` (empty: cold; used before: warm)."""
        start = time.perf_counter()
        found = self.cli(trust_dir, "lookup", GUN, "t1")
        elapsed = time.perf_counter() - start
        if found.split()[:2] != ["t1", _digest("t1")]:
            raise SystemExit(f"notary lookup found {found!r}")
        return elapsed

    def cold_verify(self, run: int) -> tuple[float, int]:
        fresh = self.work / f"client-{run}"
        elapsed = self.lookup(fresh)
        cached = sum(p.stat().st_size for p in fresh.rglob("*.json"))
        return elapsed, cached

    def warm_verify(self, run: int) -> float:
        """``lookup`` again with the trust dir of ``cold_verify(run)``."""
        return self.lookup(self.work / f"client-{run}")

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=10)


def _interleaved(runs: int, *steps: Callable[[int], float]) -> list[list[float]]:
    results: list[list[float]] = [[] for _ in steps]
    for run in range(runs):
        for index, step in enumerate(steps):
            results[index].append(step(run))
    return results


def bench(tags: int, runs: int, with_notary: bool, store_signs: int) -> dict[str, str]:
    work = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    row: dict[str, str] = {"tags": f"{tags:,}"}
    notary: NotaryCase | None = None
    try:
        dct = TrustkitCase.build(work / "dct", tags, "dct")
        bins = TrustkitCase.build(work / "bins", tags, "bins")
        if with_notary and shutil.which("notary") and shutil.which("notary-server"):
            (work / "notary").mkdir()
            notary = NotaryCase.build(work / "notary", tags)
        verify_bytes: dict[str, list[int]] = {"dct": [], "bins": [], "notary": []}

        def verifier(name: str, case: TrustkitCase | NotaryCase) -> Callable[[int], float]:
            def step(run: int) -> float:
                elapsed, read = case.cold_verify(run)
                verify_bytes[name].append(read)
                return elapsed

            return step

        steps: list[Callable[[int], float]] = [
            lambda _: dct.sign_once(),
            lambda _: bins.sign_once(),
            verifier("dct", dct),
            verifier("bins", bins),
        ]
        if notary is not None:
            steps += [lambda _: notary.sign_once(), verifier("notary", notary)]
        results = _interleaved(runs, *steps)
        row["sign_dct"] = f"{_median_ms(results[0]):.1f}"
        row["sign_bins"] = f"{_median_ms(results[1]):.1f}"
        row["verify_dct"] = f"{_median_ms(results[2]):.1f}"
        row["verify_bins"] = f"{_median_ms(results[3]):.1f}"
        row["read_dct"] = f"{statistics.median(verify_bytes['dct']) / 1000:.1f}"
        row["read_bins"] = f"{statistics.median(verify_bytes['bins']) / 1000:.1f}"
        if notary is not None:
            row["sign_notary"] = f"{_median_ms(results[4]):.0f}"
            row["verify_notary"] = f"{_median_ms(results[5]):.0f}"
            row["read_notary"] = f"{statistics.median(verify_bytes['notary']) / 1000:.1f}"
        row["canonical_dct"] = f"{dct.canonical_share() * 100:.0f} %"
        row["canonical_bins"] = f"{bins.canonical_share() * 100:.0f} %"
        if store_signs:
            for _ in range(store_signs - bins.signed):
                bins.sign_once()
            on_disk, one_set = bins.store_bytes()
            row["store"] = f"{on_disk / 1e6:.2f} MB / {one_set / 1e6:.2f} MB"
        return row
    finally:
        if notary is not None:
            notary.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-notary", action="store_true")
    parser.add_argument("--store-signs", type=int, default=100, help="0: skip the store size")
    ns = parser.parse_args()
    rows = []
    for n in ns.tags:
        signs = ns.store_signs if n == max(ns.tags) else 0
        rows.append(bench(n, ns.runs, not ns.no_notary, signs))
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(
        "| tags | sign one tag, DCT / bins (ms) | notary addhash -p (ms) | cold verify, DCT / "
        "bins (ms) | notary lookup, cold (ms) | read, DCT / bins / notary (KB) "
        "| canonical JSON share, DCT / bins |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['tags']} | {r['sign_dct']} / {r['sign_bins']} | {r.get('sign_notary', '-')} "
            f"| {r['verify_dct']} / {r['verify_bins']} | {r.get('verify_notary', '-')} "
            f"| {r['read_dct']} / {r['read_bins']} / {r.get('read_notary', '-')} "
            f"| {r['canonical_dct']} / {r['canonical_bins']} |"
        )
    for r in rows:
        if "store" in r:
            print(f"\nstore after {ns.store_signs} signs at {r['tags']} tags (bins): {r['store']}")


if __name__ == "__main__":
    main()
