"""Whole-process start-up of `trustkit --help` (goal ≤ 150 ms): heavy imports must stay lazy.

python benchmarks/bench_cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def measure(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    ns = parser.parse_args()
    rows = [
        ("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"]),
        ("trustkit --help", [sys.executable, "-m", "trustkit", "--help"]),
        ("trustkit trust --help", [sys.executable, "-m", "trustkit", "trust", "--help"]),
    ]
    print("| command | median ms | p90 ms |")
    print("| --- | ---: | ---: |")
    for label, args in rows:
        measure(args, 2)  # warm the page cache
        t = sorted(measure(args, ns.runs))
        print(f"| `{label}` | {statistics.median(t):.0f} | {t[int(len(t) * 0.9) - 1]:.0f} |")


if __name__ == "__main__":
    main()
