"""Policy evaluation in-process: a 10,000-finding report against 20 policies (goal ≤ 50 ms).

    python benchmarks/bench_policy.py [--findings 10000] [--policies 20] [--runs 50]

Findings are the real juice-shop Trivy report (tests/data/reports), parsed by trustkit's parser
and repeated with distinct ids up to --findings. Policies mix BLOCK/WARN/AUDIT, every severity
threshold, ignore_unfixed, a 50-entry allowlist (some expired), a denylist, max_scan_age and
require_signed. Prints a markdown table (median, p95, max over --runs, after a warm-up run),
plus the time to load the policy files.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trustkit.attest.model import ScanReport, VerifiedScan  # noqa: E402
from trustkit.attest.reports import parse_report  # noqa: E402
from trustkit.config import Settings  # noqa: E402
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence  # noqa: E402
from trustkit.policy import ImageFacts, evaluate, load_policies  # noqa: E402
from trustkit.verdict import Context  # noqa: E402

NOW = datetime(2025, 6, 1, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def big_scan(count: int) -> VerifiedScan:
    data = ROOT / "tests" / "data" / "reports" / "securecodebox_juice-shop-v10.2.0.json"
    report = parse_report(data.read_bytes())
    base = report.findings
    findings = tuple(
        dataclasses.replace(base[i % len(base)], vulnerability_id=f"CVE-2099-{i:05d}")
        for i in range(count)
    )
    return VerifiedScan(
        report=ScanReport(format=report.format, scanner=report.scanner, findings=findings),
        image_digest=DIGEST,
        scan_finished_on=NOW - timedelta(hours=3),
        signer_keyid="5c" * 32,
        predicate_type="https://cosign.sigstore.dev/attestation/vuln/v1",
    )


def write_policies(directory: Path, count: int, ids: list[str]) -> None:
    directory.mkdir(parents=True)
    severities = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    for i in range(count):
        entries = "".join(
            f"    - id: {vid}\n      reason: benchmark\n      owner: bench@example.com\n"
            f'      expires: "{"2025-01-01" if j % 5 == 0 else "2026-01-01"}"\n'
            for j, vid in enumerate(ids[i * 50 : i * 50 + 50])
        )
        (directory / f"p{i:02d}.yaml").write_text(
            "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\n"
            f"name: p{i:02d}\naction: {['BLOCK', 'WARN', 'AUDIT'][i % 3]}\n"
            f"scope: ['**']\nrules:\n  severity: {severities[i % 4]}\n"
            f"  ignore_unfixed: {str(i % 2 == 0).lower()}\n"
            "  denylist: [CVE-2021-44228, CVE-2099-05000]\n  max_scan_age: 7d\n"
            "  require_signed: true\n"
            f"  allowlist:\n{entries}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--runs", type=int, default=50)
    ns = parser.parse_args()

    scan = big_scan(ns.findings)
    ids = [f.vulnerability_id for f in scan.report.findings]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(trust_dir=Path(tmp))
        write_policies(settings.effective_policy_dir, ns.policies, ids)
        start = time.perf_counter()
        policies = load_policies(settings)
        load_ms = (time.perf_counter() - start) * 1000
    facts = ImageFacts(
        reference="registry.example.com/app:1",
        digest=DIGEST,
        trust=TrustEvidence(
            EvidenceSource.TUF_COLLECTION,
            checked=True,
            verified=True,
            digest=DIGEST,
            signers=(SignerIdentity("releases", ("5d" * 32,)),),
            tags=("1",),
        ),
        scans=(scan,),
    )
    result = evaluate(policies, facts, context=Context.CI, now=NOW)  # warm-up
    assert len(result.outcomes) == ns.policies
    times, cpu = [], []
    for _ in range(ns.runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        evaluate(policies, facts, context=Context.CI, now=NOW)
        cpu.append((time.process_time() - start_cpu) * 1000)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    print(f"| operation ({ns.runs} runs) | median ms | p95 ms | min ms | median CPU ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(
        f"| evaluate: {ns.findings} findings x {ns.policies} policies "
        f"(action {result.action.name}, {len(result.reasons)} reasons) "
        f"| {statistics.median(times):.1f} | {p95:.1f} | {times[0]:.1f} "
        f"| {statistics.median(cpu):.1f} |"
    )
    label = f"load_policies: {ns.policies} files, 50 allowlist entries each (first call)"
    print(f"| {label} | {load_ms:.1f} | – | – | – |")


if __name__ == "__main__":
    main()
