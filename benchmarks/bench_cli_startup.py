"""Whole-process start-up of trustkit commands: heavy imports must stay lazy.

python benchmarks/bench_cli_startup.py [--runs 20] [--tags 10000] [--work DIR]

Goals (issue 11): `trustkit --help` ≤ 150 ms; `trustkit trust verify` (warm cache) ≤ 120 ms;
`trustkit hook pre-pull` ≤ 150 ms; `trustkit trust sign` into a --tags collection (hashed bins),
keys unlocked from disk, ≤ 250 ms at 100,000 tags. The collection lives in the local store
(`SERVIN_CONTENT_TRUST_SERVER=local`), so no registry is contacted and none is needed. Commands
are run interleaved (one of each per round), medians reported. ``--work DIR`` keeps (and reuses)
the collection, which takes minutes to build at 100,000 tags.

Before/after: ``--trustkit-root DIR`` runs the trustkit in DIR (a git worktree of another
revision) for the build and for every command, with the same launcher as the default (this
checkout), so only the code differs. The launcher bypasses the editable install's finder, which
would otherwise win over PYTHONPATH.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUN = "localhost:5000/bench/app"
#: run ``-m trustkit`` from the first PYTHONPATH entry, not the editable install
LAUNCH = (
    "import runpy, sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
    "sys.argv[0] = 'trustkit'; runpy.run_module('trustkit', run_name='__main__')"
)


def use_root(root: Path) -> None:
    """Import trustkit from ``root`` in this process too (for the build)."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, str(root))


PASS = "bench-pass"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def build(work: Path, tags: int) -> None:
    """A collection with signer alice in hashed bins, ``tags`` tags (skipped when present)."""
    marker = work / f"built-{tags}"
    if marker.exists():
        return
    from trustkit.collections import add_signer, sign_tags
    from trustkit.collections.bins import use_bins
    from trustkit.config import Settings
    from trustkit.keys import KeyStore
    from trustkit.refs import parse

    settings = Settings(
        trust_dir=work / "trust",
        content_trust=True,
        trust_server="local",
        root_passphrase=PASS,
        repository_passphrase=PASS,
    )
    keystore = KeyStore(settings)
    alice = keystore.generate(role="delegation", name="alice")
    gun = parse(GUN, default_tag=False).gun
    add_signer(settings, gun, "alice", [alice.public_key], keystore=keystore)
    use_bins(settings, gun, keystore=keystore)
    entries = {f"t{i}": (_digest(f"t{i}"), 1000 + i) for i in range(tags)}
    sign_tags(settings, gun, entries, keystore=keystore)
    marker.write_text("ok\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sign-runs", type=int, default=8)
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--trustkit-root", type=Path, default=ROOT)
    ns = parser.parse_args()
    use_root(ns.trustkit_root)
    work = ns.work or Path(tempfile.mkdtemp(prefix="trustkit-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    build(work, ns.tags)
    env = dict(
        os.environ,
        SERVIN_TRUST_DIR=str(work / "trust"),
        SERVIN_CONTENT_TRUST="1",
        SERVIN_CONTENT_TRUST_SERVER="local",
        SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE=PASS,
        SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE=PASS,
        HOME=str(work / "home"),
        PYTHONPATH=str(ns.trustkit_root),
    )
    (work / "home").mkdir(exist_ok=True)
    trustkit = [sys.executable, "-c", LAUNCH]
    pull = json.dumps({"operation": "pull", "reference": f"{GUN}:t1"}).encode()
    signed = [0]

    def sign_args() -> list[str]:
        signed[0] += 1
        tag = f"s{time.monotonic_ns()}"
        return [*trustkit, "trust", "sign", f"{GUN}:{tag}", "--digest", _digest(tag), "--size", "1"]

    rows: list[tuple[str, object, bytes | None, int]] = [
        ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"], None, ns.runs),
        ("trustkit --help", [*trustkit, "--help"], None, ns.runs),
        ("trustkit trust --help", [*trustkit, "trust", "--help"], None, ns.runs),
        (
            f"trustkit trust verify (warm cache, {ns.tags:,} tags)",
            [*trustkit, "trust", "verify", f"{GUN}:t1"],
            None,
            ns.runs,
        ),
        ("trustkit hook pre-pull (warm cache)", [*trustkit, "hook", "pre-pull"], pull, ns.runs),
        (
            f"trustkit trust sign (one tag into {ns.tags:,}, keys from disk)",
            sign_args,
            None,
            ns.sign_runs,
        ),
    ]
    samples: dict[str, list[float]] = {label: [] for label, *_ in rows}
    for _label, args, stdin, _ in rows:  # warm the page cache and the trust cache
        argv = args() if callable(args) else args
        subprocess.run(argv, check=True, capture_output=True, input=stdin, env=env)
    for round_ in range(ns.runs):  # interleaved: every command sees the same machine load
        for label, args, stdin, runs in rows:
            if round_ >= runs:
                continue
            argv = args() if callable(args) else args
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, input=stdin, env=env)
            samples[label].append((time.perf_counter() - start) * 1000)
    print(f"trustkit from {ns.trustkit_root}; load average {os.getloadavg()[0]:.1f} (2 cores)")
    print("| command | median ms | p90 ms | runs |")
    print("| --- | ---: | ---: | ---: |")
    for label, *_ in rows:
        t = sorted(samples[label])
        p90 = t[max(0, int(len(t) * 0.9) - 1)]
        print(f"| `{label}` | {statistics.median(t):.0f} | {p90:.0f} | {len(t)} |")


if __name__ == "__main__":
    main()
