"""Push of a 50 MB image (OCI layout → local docker-registry): trustkit vs ``skopeo copy``.

    python benchmarks/bench_push.py [--mb 50] [--layers 5] [--runs 3]

Each run pushes to a freshly started registry, so every blob is really uploaded: no skips and no
cross-repository mounts (skopeo remembers where blobs live and would mount them otherwise).
Measured: trustkit in-process (``push_image``), trustkit as a whole process
(``trustkit push --disable-content-trust``) and ``skopeo copy`` of the same layout. Prints a
markdown table with medians and the ratio to skopeo.
"""

from __future__ import annotations

import argparse
import os
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

from trustkit.config import Settings  # noqa: E402
from trustkit.pipeline.flows import push_image  # noqa: E402


def timed(action: Callable[[str], None], runs: int, tmp: Path) -> list[float]:
    """Time ``action(registry_host)`` against a fresh registry each run (started untimed)."""
    times = []
    for run in range(runs):
        registry = start_registry(tmp / f"registry-{time.monotonic_ns()}-{run}")
        try:
            start = time.perf_counter()
            action(registry.host)
            times.append(time.perf_counter() - start)
        finally:
            registry.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        layer = ns.mb * 1024 * 1024 // ns.layers
        image = make_oci_image(tmp / "layout", "v1", (layer,) * ns.layers)
        settings = Settings(trust_dir=tmp / "trust", config_dir=tmp / "config")
        env = {
            **os.environ,
            "SERVIN_TRUST_DIR": str(tmp / "trust"),
            "SERVIN_CONFIG": str(tmp / "config"),
        }
        rows = {
            "trustkit push (in-process)": timed(
                lambda host: push_image(settings, image.oci, f"{host}/bench/app:v1", sign=False),
                ns.runs,
                tmp,
            ),
            "trustkit push (whole process)": timed(
                lambda host: (
                    subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "trustkit",
                            "push",
                            "--disable-content-trust",
                            image.oci,
                            f"{host}/bench/app:v1",
                        ],
                        check=True,
                        capture_output=True,
                        env=env,
                    )
                    and None
                ),
                ns.runs,
                tmp,
            ),
            "skopeo copy": timed(
                lambda host: (
                    subprocess.run(
                        [
                            "skopeo",
                            "--insecure-policy",
                            "copy",
                            "--quiet",
                            "--dest-tls-verify=false",
                            image.oci,
                            f"docker://{host}/bench/app:v1",
                        ],
                        check=True,
                        capture_output=True,
                    )
                    and None
                ),
                ns.runs,
                tmp,
            ),
        }
    floor = statistics.median(rows["skopeo copy"])
    print(
        f"Push of a {ns.mb} MB image ({ns.layers} layers) to a loopback docker-registry, "
        f"median of {ns.runs} runs"
    )
    print()
    print("| tool | median s | MB/s | vs skopeo |")
    print("| --- | ---: | ---: | ---: |")
    for label, times in rows.items():
        med = statistics.median(times)
        print(f"| {label} | {med:.2f} | {ns.mb / med:.0f} | {med / floor:.2f}x |")


if __name__ == "__main__":
    main()
