"""Trust overhead on the pull path, and the cost of a servin hook call.

    python benchmarks/bench_pull.py [--runs 30] [--process-runs 10]

Against a real docker-registry on loopback, with one signed image (2 layers of 1 MiB):
- in-process `pull_image` with trust off vs on (warm trust cache): the added milliseconds
  (goal ≤ 5 ms); and the whole pipeline (`check_image`, no policy) on top;
- `trustkit hook pre-pull` whole-process, vs the persistent socket mode (`trustkit hook serve`);
- the peer on the same work: `skopeo copy docker://… oci:…` vs `trustkit pull --dest oci:…`
  (whole process, trust on).

    python benchmarks/bench_pull.py --big-mib 100 [--rounds 5] [--before-root DIR]

Big pull: one signed image of four layers totalling --big-mib MiB; `skopeo copy docker://… oci:…`
against `trustkit pull --dest oci:…` (trust on), whole process, interleaved rounds (the order
rotates), medians and the ratio (goal ≤ 1.1×). ``--before-root DIR`` adds the trustkit of another
revision (a git worktree), run with the same launcher, for before/after figures. Then, where a
whole-process pull spends its time: the same command --rounds times more under a launcher that
clocks its phases (start-up and imports, the trust check and verdict, fetching into the layout).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.registry import make_oci_image, start_registry  # noqa: E402

from trustkit.collections import add_signer  # noqa: E402
from trustkit.config import Settings  # noqa: E402
from trustkit.enforce import check_image  # noqa: E402
from trustkit.hook_server import start_background  # noqa: E402
from trustkit.keys import KeyStore  # noqa: E402
from trustkit.pipeline.flows import pull_image, push_image  # noqa: E402
from trustkit.refs import parse  # noqa: E402
from trustkit.verdict import Context  # noqa: E402

ROOT_PASS = "bench-root-pass"
REPO_PASS = "bench-repo-pass"


def median_ms(action: Callable[[], object], runs: int) -> float:
    action()  # warm
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


#: run ``-m trustkit`` from the first PYTHONPATH entry, not the editable install nor the current
#: directory (``python -c`` puts '' first on sys.path: run from a checkout, it would import that
#: checkout on both sides of a --before-root comparison)
LAUNCH = (
    "import runpy, sys; "
    "sys.path[:] = [p for p in sys.path if p]; "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
    "sys.argv[0] = 'trustkit'; runpy.run_module('trustkit', run_name='__main__')"
)


#: ``LAUNCH`` with the pull's phases clocked: one JSON line of milliseconds on stderr at exit
PHASED_LAUNCH = """
import atexit, json, sys, time
start = time.perf_counter()
sys.path[:] = [p for p in sys.path if p]
sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__]
phases = {}
def clocked(module, name, phase):
    inner = getattr(module, name)
    def run(*args, **kwargs):
        began = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            phases[phase] = phases.get(phase, 0.0) + (time.perf_counter() - began) * 1000
    setattr(module, name, run)
import trustkit.cli, trustkit.pipeline.flows as flows, trustkit.registry.copy as copy
clocked(flows, 'check_image', 'trust check and verdict')
clocked(flows, '_verified_target', 'tag verified again for the fetch')
clocked(copy, 'fetch_image', 'fetch into the layout')
phases['imports: CLI, pipeline, registry client'] = (time.perf_counter() - start) * 1000
def report():
    phases['in process, in all'] = (time.perf_counter() - start) * 1000
    print('PHASES ' + json.dumps(phases), file=sys.stderr)
atexit.register(report)
sys.argv[0] = 'trustkit'
import runpy
runpy.run_module('trustkit', run_name='__main__')
"""


def big_pull(ns: argparse.Namespace) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="bench-bigpull-"))
    registry = start_registry(tmp / "registry")
    try:
        layer = ns.big_mib * (1 << 20) // 4
        image = make_oci_image(tmp / "layout", "v1", (layer,) * 4, seed=b"big")
        settings = Settings(
            trust_dir=tmp / "trust",
            content_trust=True,
            root_passphrase=ROOT_PASS,
            repository_passphrase=REPO_PASS,
            config_dir=tmp / "config",
        )
        ref_text = f"{registry.host}/bench/big:v1"
        push_image(settings, image.oci, ref_text, sign=True)
        env = dict(
            os.environ,
            SERVIN_TRUST_DIR=str(settings.trust_dir),
            SERVIN_CONFIG=str(tmp / "config"),
            SERVIN_CONTENT_TRUST="1",
        )
        contestants: dict[str, Callable[[Path], list[str]]] = {
            "skopeo copy (no trust)": lambda dest: [
                skopeo, "copy", "--src-tls-verify=false", f"docker://{ref_text}", f"oci:{dest}:v1"
            ],
        }  # fmt: skip
        roots = [("trustkit pull (trust on)", ROOT)]
        if ns.before_root:
            roots.append(("trustkit pull, before (trust on)", ns.before_root))
        envs: dict[str, dict[str, str]] = {}
        for label, root in roots:
            contestants[label] = lambda dest: [
                sys.executable, "-c", LAUNCH, "pull", ref_text, "--dest", f"oci:{dest}:v1"
            ]  # fmt: skip
            envs[label] = dict(env, PYTHONPATH=str(root))
        samples: dict[str, list[float]] = {label: [] for label in contestants}
        labels = list(contestants)
        for round_ in range(ns.rounds + 1):  # round 0 warms caches and is not counted
            order = labels[round_ % len(labels) :] + labels[: round_ % len(labels)]
            for label in order:
                dest = tmp / f"out-{time.monotonic_ns()}"
                start = time.perf_counter()
                subprocess.run(
                    contestants[label](dest),
                    env=envs.get(label, env),
                    check=True,
                    capture_output=True,
                )
                took = time.perf_counter() - start
                shutil.rmtree(dest, ignore_errors=True)
                if round_:
                    samples[label].append(took * 1000)
        peer = statistics.median(samples[labels[0]])
        print(f"{ns.big_mib} MiB in 4 layers; {ns.rounds} interleaved rounds; ", end="")
        print(f"load average {os.getloadavg()[0]:.1f} (2 cores)")
        print("| whole process | median ms | runs (ms) | × skopeo |")
        print("| --- | ---: | --- | ---: |")
        for label in labels:
            med = statistics.median(samples[label])
            runs = ", ".join(f"{v:.0f}" for v in samples[label])
            print(f"| {label} | {med:.0f} | {runs} | {med / peer:.2f} |")
        _pull_phases(ref_text, tmp, dict(env, PYTHONPATH=str(ROOT)), ns.rounds)
    finally:
        registry.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _pull_phases(ref_text: str, tmp: Path, env: dict[str, str], runs: int) -> None:
    """Where the whole-process pull's time goes: its phases, clocked in process, and the
    interpreter's own start and exit (the wall time the process does not see)."""
    seen: dict[str, list[float]] = {}
    for _ in range(runs):
        dest = tmp / f"phases-{time.monotonic_ns()}"
        argv = ["pull", ref_text, "--dest", f"oci:{dest}:v1", "--quiet"]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", PHASED_LAUNCH, *argv], env=env, check=True, capture_output=True
        )
        wall = (time.perf_counter() - start) * 1000
        shutil.rmtree(dest, ignore_errors=True)
        line = next(x for x in done.stderr.decode().splitlines() if x.startswith("PHASES "))
        phases = json.loads(line.removeprefix("PHASES "))
        inside = phases.pop("in process, in all")
        phases["the rest in process (options, other imports, output)"] = inside - sum(
            phases.values()
        )
        phases["interpreter start and exit"] = wall - inside
        phases["whole process (wall)"] = wall
        for name, value in phases.items():
            seen.setdefault(name, []).append(value)
    print(f"\n`trustkit pull --dest oci:…` by phase ({runs} runs, medians)")
    print("| phase | ms |")
    print("| --- | ---: |")
    for name, values in seen.items():
        print(f"| {name} | {statistics.median(values):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--process-runs", type=int, default=10)
    parser.add_argument("--big-mib", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before-root", type=Path, default=None)
    ns = parser.parse_args()
    if ns.big_mib:
        big_pull(ns)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    registry = start_registry(tmp / "registry")
    server = None
    try:
        image = make_oci_image(tmp / "layout", "v1", (1 << 20, 1 << 20))
        settings = Settings(
            trust_dir=tmp / "trust",
            content_trust=True,
            root_passphrase=ROOT_PASS,
            repository_passphrase=REPO_PASS,
            config_dir=tmp / "config",
        )
        store = KeyStore(settings)
        alice = store.generate(role="delegation", name="alice")
        ref_text = f"{registry.host}/bench/app:v1"
        ref = parse(ref_text)
        add_signer(settings, ref.gun, "alice", [alice.public_key], keystore=store)
        push_image(settings, image.oci, ref_text, sign=True)

        # interleaved pairs, so drift on a shared machine hits both sides alike
        pull_image(settings, ref_text, verify=True)
        offs: list[float] = []
        ons: list[float] = []
        for i in range(ns.runs):
            pair = ((False, offs), (True, ons))
            for verify, samples in pair if i % 2 == 0 else reversed(pair):  # alternate who's first
                start = time.perf_counter()
                pull_image(settings, ref_text, verify=verify)
                samples.append(time.perf_counter() - start)
        off = statistics.median(offs) * 1000
        on = statistics.median(ons) * 1000
        added = statistics.median(b - a for a, b in zip(offs, ons, strict=True)) * 1000
        pipeline = median_ms(lambda: check_image(settings, ref_text, context=Context.PULL), ns.runs)

        env = dict(
            os.environ,
            SERVIN_TRUST_DIR=str(settings.trust_dir),
            SERVIN_CONFIG=str(tmp / "config"),
            SERVIN_CONTENT_TRUST="1",
        )
        request = json.dumps({"operation": "pull", "reference": ref_text})

        def hook_process() -> None:
            subprocess.run(
                [sys.executable, "-m", "trustkit", "hook", "pre-pull"],
                input=request.encode(),
                env=env,
                check=True,
                capture_output=True,
            )

        hook_whole = median_ms(hook_process, ns.process_runs)

        sock_path = tmp / "hooks.sock"
        server, _ = start_background(settings, sock_path)
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(sock_path))
        reader = client.makefile("rb")
        line = json.dumps({"hook": "pre-pull", "request": json.loads(request)}).encode() + b"\n"

        def hook_socket() -> None:
            client.sendall(line)
            answer = json.loads(reader.readline())
            assert answer["exit"] == 0, answer

        hook_persistent = median_ms(hook_socket, ns.runs)
        client.close()

        # the CI gate on one image, whole process, warm caches: a juice-shop scan attested and a
        # HIGH threshold policy (the image is blocked: exit 1 is the expected answer)
        from trustkit.attest.service import attest_report

        store.generate(role="scanner", name="scanner")
        report = ROOT / "examples" / "reports" / "juice-shop-v10.2.0.trivy.json"
        attest_report(settings, ref_text, report_bytes=report.read_bytes(), key_name="scanner")
        policy = tmp / "policy.yaml"
        policy.write_text(
            "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: high\naction: BLOCK\n"
            "scope: ['**']\nrules:\n  severity: HIGH\n"
        )

        def gate_process() -> None:
            done = subprocess.run(
                [sys.executable, "-m", "trustkit", "gate", "--policy", str(policy), ref_text],
                env=env,
                check=False,
                capture_output=True,
            )
            assert done.returncode == 1, done.stderr

        gate_whole = median_ms(gate_process, ns.process_runs)

        peer_rows = []
        skopeo = shutil.which("skopeo")
        if skopeo:

            def skopeo_pull() -> None:
                dest = tmp / f"skopeo-{time.monotonic_ns()}"
                subprocess.run(
                    [
                        skopeo,
                        "copy",
                        "--src-tls-verify=false",
                        f"docker://{ref_text}",
                        f"oci:{dest}:v1",
                    ],
                    check=True,
                    capture_output=True,
                )

            def trustkit_pull() -> None:
                dest = tmp / f"trustkit-{time.monotonic_ns()}"
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "trustkit",
                        "pull",
                        ref_text,
                        "--dest",
                        f"oci:{dest}:v1",
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                )

            peer_rows = [
                (
                    "`skopeo copy docker://… oci:…` (no trust)",
                    median_ms(skopeo_pull, ns.process_runs),
                ),
                (
                    "`trustkit pull --dest oci:…` (trust on)",
                    median_ms(trustkit_pull, ns.process_runs),
                ),
            ]

        print("| measurement (median) | ms |")
        print("| --- | ---: |")
        print(f"| `pull_image`, trust off (in-process) | {off:.2f} |")
        print(f"| `pull_image`, trust on, warm trust cache (in-process) | {on:.2f} |")
        print(f"| **trust overhead on pull** (median of paired differences) | **{added:.2f}** |")
        print(
            f"| `check_image` pipeline alone, trust on, no policy (in-process) | {pipeline:.2f} |"
        )
        print(f"| `trustkit hook pre-pull`, whole process | {hook_whole:.1f} |")
        print(
            "| `pre-pull` over the persistent socket (`trustkit hook serve`) "
            f"| {hook_persistent:.2f} |"
        )
        print(
            "| `trustkit gate` (juice-shop attestation, HIGH policy), whole process "
            f"| {gate_whole:.1f} |"
        )
        for label, value in peer_rows:
            print(f"| {label}, whole process | {value:.1f} |")
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        registry.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
