"""Whole-process start-up of trustkit commands: heavy imports must stay lazy.

python benchmarks/bench_cli_startup.py [--runs 20] [--tags 10000] [--work DIR]

Goals (issue 11): `trustkit --help` ≤ 150 ms; `trustkit trust verify` (warm cache: the collection
unchanged since this client's last verify, ADR 0017; also timed right after a publish) ≤ 120 ms;
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUN = "localhost:5000/bench/app"
#: run ``-m trustkit`` from the first PYTHONPATH entry, not the editable install nor the current
#: directory (``python -c`` puts '' first on sys.path: run from a checkout, it would import that
#: checkout on both sides of a comparison)
LAUNCH = (
    "import runpy, sys; "
    "sys.path[:] = [p for p in sys.path if p]; "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
    "sys.argv[0] = 'trustkit'; runpy.run_module('trustkit', run_name='__main__')"
)


def use_root(root: Path) -> None:
    """Import trustkit from ``root`` in this process too (for the build)."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, str(root))


PASS = "bench-pass"
#: (label, argv or a function making it per run, stdin, runs, environment)
Row = tuple[str, list[str] | Callable[[], list[str]], bytes | None, int, dict[str, str]]


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def build(work: Path, tags: int) -> None:
    """A collection with signer alice in hashed bins, ``tags`` tags (skipped when present)."""
    marker = work / f"built-{tags}"
    if marker.exists():
        return
    from trustkit.collections import add_signer, sign_tags
    from trustkit.collections.engine import use_bins
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
    parser.add_argument(
        "--compare-root",
        type=Path,
        default=None,
        help="another revision's checkout: each command runs for both, back to back",
    )
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    work = ns.work or Path(tempfile.mkdtemp(prefix="trustkit-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    if ns.build_only:
        use_root(ns.trustkit_root)
        build(work, ns.tags)
        return
    sides = [("", ns.trustkit_root, work)]
    if ns.compare_root is not None:
        sides = [
            ("after: ", ns.trustkit_root, work / "after"),
            ("before: ", ns.compare_root, work / "before"),
        ]
    trustkit = [sys.executable, "-c", LAUNCH]
    pull = json.dumps({"operation": "pull", "reference": f"{GUN}:t1"}).encode()

    def sign_args() -> list[str]:
        tag = f"s{time.monotonic_ns()}"
        return [*trustkit, "trust", "sign", f"{GUN}:{tag}", "--digest", _digest(tag), "--size", "1"]

    verify_args = [*trustkit, "trust", "verify", f"{GUN}:t1"]

    def untimed_then(
        first: Callable[[], list[str]], env: dict[str, str]
    ) -> Callable[[], list[str]]:
        """Run ``first`` (not timed), then time a verify: every round signs a tag, so a verify
        is warm (the collection unchanged since this client's last verify, ADR 0017) only
        right after another verify, and "after a publish" only right after a sign."""

        def args() -> list[str]:
            subprocess.run(first(), check=True, capture_output=True, env=env)
            return verify_args

        return args

    pre_pull_args = [*trustkit, "hook", "pre-pull"]

    def pre_pull_again(env: dict[str, str]) -> Callable[[], list[str]]:
        """An untimed pre-pull of the tag, then the timed one: warm (ADR 0017) only then."""

        def args() -> list[str]:
            subprocess.run(pre_pull_args, check=True, capture_output=True, input=pull, env=env)
            return pre_pull_args

        return args

    floor: Row = (
        "python -c pass (interpreter floor)",
        [sys.executable, "-c", "pass"],
        None,
        ns.runs,
        {},
    )
    rows: list[Row] = [floor]
    for prefix, root, side_work in sides:
        side_work.mkdir(parents=True, exist_ok=True)
        # built by the side's own trustkit (its key file format, its layout)
        subprocess.run(
            [sys.executable, __file__, "--build-only", "--tags", str(ns.tags),
             "--work", str(side_work), "--trustkit-root", str(root)],
            check=True,
        )  # fmt: skip
        (side_work / "home").mkdir(exist_ok=True)
        env = dict(
            os.environ,
            SERVIN_TRUST_DIR=str(side_work / "trust"),
            SERVIN_CONTENT_TRUST="1",
            SERVIN_CONTENT_TRUST_SERVER="local",
            SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE=PASS,
            SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE=PASS,
            HOME=str(side_work / "home"),
            PYTHONPATH=str(root),
        )
        rows += [
            (f"{prefix}trustkit --help", [*trustkit, "--help"], None, ns.runs, env),
            (
                f"{prefix}trustkit trust verify (warm cache, {ns.tags:,} tags)",
                untimed_then(lambda: verify_args, env),
                None,
                ns.runs,
                env,
            ),
            (
                f"{prefix}trustkit trust verify (after a publish, {ns.tags:,} tags)",
                untimed_then(sign_args, env),
                None,
                ns.sign_runs,
                env,
            ),
            (
                f"{prefix}trustkit hook pre-pull (first since the last publish)",
                pre_pull_args,
                pull,
                ns.runs,
                env,
            ),
            (
                f"{prefix}trustkit hook pre-pull (warm cache)",
                pre_pull_again(env),
                pull,
                ns.runs,
                env,
            ),
            (
                f"{prefix}trustkit trust sign (one tag into {ns.tags:,}, keys from disk)",
                sign_args,
                None,
                ns.sign_runs,
                env,
            ),
        ]
    samples: dict[str, list[float]] = {row[0]: [] for row in rows}
    for label, args, stdin, _, env in rows:  # warm the page cache and the trust cache
        argv = args() if callable(args) else args
        done = subprocess.run(argv, capture_output=True, input=stdin, env=env or None, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{label} failed: {done.stderr.decode()[-2000:]}")
    # interleaved: every command (and both sides) sees the same machine load; with two sides,
    # each command runs for one side then the other, alternating who goes first
    order = sorted(range(len(rows)), key=lambda i: rows[i][0].split(": ")[-1])
    for round_ in range(ns.runs):
        for i in order if round_ % 2 == 0 else _swap_pairs(order, rows):
            label, args, stdin, runs, env = rows[i]
            if round_ >= runs:
                continue
            argv = args() if callable(args) else args
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, input=stdin, env=env or None)
            samples[label].append((time.perf_counter() - start) * 1000)
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores); sides: ", end="")
    print(", ".join(f"{prefix or 'this'}{root}" for prefix, root, _ in sides))
    print("| command | median ms | p90 ms | runs |")
    print("| --- | ---: | ---: | ---: |")
    for i in order:
        label = rows[i][0]
        t = sorted(samples[label])
        p90 = t[max(0, int(len(t) * 0.9) - 1)]
        print(f"| `{label}` | {statistics.median(t):.0f} | {p90:.0f} | {len(t)} |")


def _swap_pairs(order: list[int], rows: list[Row]) -> list[int]:
    """``order`` with each after/before pair of the same command swapped."""
    out = list(order)
    for j in range(len(out) - 1):
        a, b = rows[out[j]][0], rows[out[j + 1]][0]
        if a.split(": ")[-1] == b.split(": ")[-1] and a != b:
            out[j], out[j + 1] = out[j + 1], out[j]
    return out


if __name__ == "__main__":
    main()
