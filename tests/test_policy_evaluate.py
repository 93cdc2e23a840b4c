"""The evaluator against findings from the real sample reports, with a fixed clock."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from fixtures.policy import DIGEST, NOW, SCANNER_KEYID, make_scan

from trustkit.attest.model import Finding, Severity, Suppression, VexStatus
from trustkit.errors import BadInputError, FailureKind
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence
from trustkit.policy import ImageFacts, Policy, evaluate, load_policy_text
from trustkit.verdict import Action, Context

JUICE = "docker.io/bkimminich/juice-shop:v10.2.0"


def signed_by(*names: str) -> TrustEvidence:
    return TrustEvidence(
        EvidenceSource.TUF_COLLECTION,
        checked=True,
        verified=True,
        signers=tuple(SignerIdentity(n, (f"{i:02x}" * 32,)) for i, n in enumerate(names)),
    )


SIGNED = signed_by("targets/releases")

Sample = Callable[[str], tuple[Finding, ...]]


def policy(name: str = "p", action: str = "BLOCK", rules: str = "", extra: str = "") -> Policy:
    text = (
        f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\naction: {action}\n"
        f"{extra}rules:\n{rules or '  {}'}\n"
    )
    if not rules:
        text = text.replace("rules:\n  {}\n", "")
    return load_policy_text(text)


def facts(
    findings: tuple[Finding, ...] | None,
    *,
    reference: str = JUICE,
    trust: TrustEvidence = SIGNED,
    finished: timedelta = timedelta(hours=1),
    keyid: str = SCANNER_KEYID,
) -> ImageFacts:
    scans = () if findings is None else (make_scan(findings, finished=NOW - finished, keyid=keyid),)
    return ImageFacts(reference=reference, digest=DIGEST, trust=trust, scans=scans)


def run(policies: list[Policy], image: ImageFacts, *, now=NOW):  # type: ignore[no-untyped-def]
    return evaluate(policies, image, context=Context.CI, now=now)


def allowlist(ids: list[str], expires: str = "2026-01-01") -> str:
    entries = "".join(
        f"    - id: {vid}\n      reason: vendor says unreachable\n      owner: sec@example.com\n"
        f"      expires: {expires}\n"
        for vid in ids
    )
    return f"  allowlist:\n{entries}"


def test_high_threshold_blocks_juice_shop_and_passes_a_clean_image(
    juice_shop: tuple[Finding, ...],
) -> None:
    high = policy("vulnerability-policy", rules="  severity: HIGH")
    blocked = run([high], facts(juice_shop))
    assert blocked.action is Action.BLOCK
    (reason,) = blocked.reasons
    assert reason.policy == "vulnerability-policy" and reason.rule == "severity"
    assert "at or above HIGH" in reason.message
    assert "CVE-2021-36159" in reason.findings  # apk-tools, CRITICAL, fixed in 2.10.7-r0
    assert "apk-tools to 2.10" in (reason.remedy or "")
    assert "allowlist of policy vulnerability-policy" in (reason.remedy or "")
    high_ids = {f.vulnerability_id for f in juice_shop if f.severity >= Severity.HIGH}
    assert set(reason.findings) == high_ids
    assert {a.vulnerability_id for a in reason.affected} == high_ids

    clean = run([high], facts((), reference="registry.example.com/clean:1"))
    assert clean.action is Action.ALLOW and clean.reasons == ()
    assert clean.verdict(facts(()), context=Context.CI).allowed


def test_critical_allowlist_lets_through_until_it_expires(juice_shop: tuple[Finding, ...]) -> None:
    criticals = sorted({f.vulnerability_id for f in juice_shop if f.severity is Severity.CRITICAL})
    assert len(criticals) > 10
    p = policy(rules="  severity: CRITICAL\n" + allowlist(criticals, "2026-01-01"))
    image = facts(juice_shop)
    before = run([p], image, now=NOW)
    assert before.action is Action.ALLOW
    explained = dict((r, d) for r, _, d in before.outcomes[0].rules)
    assert "waived" in explained["allowlist"]

    after_expiry = NOW.replace(year=2026, month=1, day=1)  # the instant it expires
    image = dataclasses.replace(image, scans=(make_scan(juice_shop, finished=after_expiry),))
    after = run([p], image, now=after_expiry)
    assert after.action is Action.BLOCK
    expired = [r for r in after.reasons if r.rule == "allowlist"]
    assert len(expired) == len(criticals)
    assert f"allowlist entry for {criticals[0]} expired on 2026-01-01" in expired[0].message
    assert "renew" in (expired[0].remedy or "")


def test_allowlist_entry_limited_to_other_images_does_not_apply(
    juice_shop: tuple[Finding, ...],
) -> None:
    criticals = sorted({f.vulnerability_id for f in juice_shop if f.severity is Severity.CRITICAL})
    rules = "  severity: CRITICAL\n" + allowlist(criticals).replace(
        "      expires: 2026-01-01\n", "      expires: 2026-01-01\n      images: [nginx]\n"
    )
    assert run([policy(rules=rules)], facts(juice_shop)).action is Action.BLOCK
    assert run([policy(rules=rules)], facts(juice_shop, reference="nginx:1")).action is Action.ALLOW


def _severity_ids(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {i for r in result.reasons if r.rule == "severity" for i in r.findings}


@pytest.mark.parametrize(
    "name",
    [
        "securecodebox_juice-shop-v10.2.0.json",
        "trivy_alpine-39.json",
        "trivy_debian-buster.json",
        "trivy_centos-7.json",
    ],
)
def test_ignore_unfixed_changes_the_outcome_only_where_there_are_unfixed_findings(
    trivy_sample: Sample, name: str
) -> None:
    findings = trivy_sample(name)
    for threshold in Severity:
        rules = f"  severity: {threshold.name}\n"
        plain = run([policy(rules=rules)], facts(findings))
        ignoring = run([policy(rules=rules + "  ignore_unfixed: true\n")], facts(findings))
        at_or_above = [f for f in findings if f.severity >= threshold]
        assert _severity_ids(plain) == {f.vulnerability_id for f in at_or_above}
        assert _severity_ids(ignoring) == {f.vulnerability_id for f in at_or_above if f.fixable}
        if all(f.fixable for f in at_or_above):
            assert (plain.action, plain.reasons) == (ignoring.action, ignoring.reasons)


@pytest.mark.parametrize(
    ("name", "threshold", "changes"),
    [
        ("securecodebox_juice-shop-v10.2.0.json", Severity.CRITICAL, True),  # 1 unfixed critical
        ("trivy_debian-buster.json", Severity.LOW, True),  # 1 unfixed LOW
        ("trivy_alpine-39.json", Severity.LOW, False),  # everything has a fix
        ("trivy_centos-7.json", Severity.MEDIUM, False),  # its unfixed finding is LOW
    ],
)
def test_ignore_unfixed_flips_the_action_once_fixable_findings_are_waived(
    trivy_sample: Sample, name: str, threshold: Severity, changes: bool
) -> None:
    findings = trivy_sample(name)
    unfixed = {f.vulnerability_id for f in findings if not f.fixable}
    waived = sorted({f.vulnerability_id for f in findings if f.fixable} - unfixed)
    rules = f"  severity: {threshold.name}\n" + allowlist(waived)
    plain = run([policy(rules=rules)], facts(findings)).action
    ignoring = run([policy(rules=rules + "  ignore_unfixed: true\n")], facts(findings)).action
    assert ignoring is Action.ALLOW
    assert plain is (Action.BLOCK if changes else Action.ALLOW)


def test_stale_scan_counts_as_no_scan(trivy_sample: Sample) -> None:
    alpine = trivy_sample("trivy_alpine-39.json")
    p = policy(
        rules="  severity: CRITICAL\n  max_scan_age: 7d\n"
        + allowlist(sorted({f.vulnerability_id for f in alpine}))
    )
    assert run([p], facts(alpine, finished=timedelta(days=6))).action is Action.ALLOW
    stale = run([p], facts(alpine, finished=timedelta(days=8)))
    assert stale.action is Action.BLOCK
    (reason,) = stale.reasons
    assert reason.rule == "require_scan"
    assert "older than max_scan_age 7d" in reason.message
    rules = {r: ok for r, ok, _ in stale.outcomes[0].rules}
    assert rules["max_scan_age"] is False


def test_missing_scan_blocks_when_required_and_only_then() -> None:
    blocking = policy(rules="  severity: HIGH")  # require_scan defaults on for BLOCK
    result = run([blocking], facts(None))
    assert result.action is Action.BLOCK
    assert result.reasons[0].rule == "require_scan"
    assert "push --scan" in (result.reasons[0].remedy or "")
    relaxed = policy(rules="  severity: HIGH\n  require_scan: false")
    assert run([relaxed], facts(None)).action is Action.ALLOW
    warn = policy(action="WARN", rules="  severity: HIGH")  # default off for WARN
    assert run([warn], facts(None)).action is Action.ALLOW
    warn_required = policy(action="WARN", rules="  require_scan: true")
    assert run([warn_required], facts(None)).action is Action.WARN


def test_unverified_attestations_are_explained() -> None:
    image = dataclasses.replace(facts(None), unverified_scans=("signature by unknown key 1a2b",))
    result = run([policy(rules="  severity: HIGH")], image)
    assert "signature by unknown key 1a2b" in result.reasons[0].message


def test_only_trusted_scanners_count(trivy_sample: Sample) -> None:
    alpine = trivy_sample("trivy_alpine-39.json")
    trusted = "cd" * 32
    p = policy(rules=f"  severity: LOW\n  trusted_scanners: ['{trusted}']")
    result = run([p], facts(alpine, keyid=SCANNER_KEYID))
    assert result.action is Action.BLOCK
    assert result.reasons[0].rule == "require_scan"
    assert "not a trusted scanner" in result.reasons[0].message
    counted = run([p], facts(alpine, keyid=trusted))
    assert [r.rule for r in counted.reasons] == ["severity"]


def test_unsigned_image_is_blocked_when_require_signed(trivy_sample: Sample) -> None:
    p = policy(rules="  require_signed: true\n  require_scan: false")
    unsigned = TrustEvidence(
        EvidenceSource.TUF_COLLECTION,
        checked=True,
        verified=False,
        failure=FailureKind.UNSIGNED,
        message="docker.io/x/y:latest is not signed: no trust data for docker.io/x/y",
    )
    result = run([p], facts((), trust=unsigned))
    assert result.action is Action.BLOCK
    assert result.reasons[0].rule == "require_signed"
    assert "no trust data" in result.reasons[0].message
    assert run([p], facts((), trust=TrustEvidence.not_checked())).action is Action.BLOCK
    assert run([p], facts((), trust=SIGNED)).action is Action.ALLOW


def test_named_signers_and_threshold() -> None:
    p = policy(
        rules="  require_scan: false\n"
        "  require_signed: {signers: [alice, bob, carol], threshold: 2}"
    )
    one = signed_by("targets/alice")
    two = signed_by("targets/alice", "bob", "mallory")
    result = run([p], facts((), trust=one))
    assert result.action is Action.BLOCK
    assert "1 of the required signers" in result.reasons[0].message
    assert run([p], facts((), trust=two)).action is Action.ALLOW


def test_strictest_action_wins_and_every_policy_is_reported(
    juice_shop: tuple[Finding, ...],
) -> None:
    audit = policy("audit-low", "AUDIT", "  severity: LOW")
    warn = policy("warn-medium", "WARN", "  severity: MEDIUM")
    block = policy("block-critical", "BLOCK", "  severity: CRITICAL")
    lenient = policy("block-denylist", "BLOCK", "  denylist: [CVE-1999-0001]")
    result = run([audit, warn, block, lenient], facts(juice_shop))
    assert result.action is Action.BLOCK
    assert [(o.policy, o.action) for o in result.outcomes] == [
        ("audit-low", Action.AUDIT),
        ("warn-medium", Action.WARN),
        ("block-critical", Action.BLOCK),
        ("block-denylist", Action.ALLOW),
    ]
    assert result.reasons[0].action is Action.BLOCK  # strictest first
    assert not result.verdict(facts(juice_shop), context=Context.CI).allowed
    softer = run([audit, warn], facts(juice_shop))
    assert softer.action is Action.WARN
    assert softer.verdict(facts(juice_shop), context=Context.CI).allowed


def test_denylist_blocks_whatever_vex_says(trivy_sample: Sample) -> None:
    alpine = trivy_sample("trivy_alpine-39.json")
    target = alpine[0].vulnerability_id
    vexed = tuple(
        dataclasses.replace(
            f, suppression=Suppression(VexStatus.NOT_AFFECTED, "component_not_present")
        )
        for f in alpine
    )
    assert run([policy(rules="  severity: LOW")], facts(vexed)).action is Action.ALLOW
    result = run([policy(rules=f"  denylist: [{target.lower()}]")], facts(vexed))
    assert result.action is Action.BLOCK
    assert result.reasons[0].rule == "denylist" and target in result.reasons[0].findings


def test_out_of_scope_and_other_context_policies_are_not_evaluated(
    juice_shop: tuple[Finding, ...],
) -> None:
    scoped = policy(
        "prod", rules="  severity: LOW", extra="scope: ['registry.example.com/prod/**']\n"
    )
    pull_only = policy("pull", rules="  severity: LOW", extra="contexts: [pull]\n")
    result = run([scoped, pull_only], facts(juice_shop))
    assert result.action is Action.ALLOW and result.outcomes == ()


def test_scans_for_another_digest_or_from_the_future_are_ignored(trivy_sample: Sample) -> None:
    alpine = trivy_sample("trivy_alpine-39.json")
    p = policy(rules="  severity: LOW")
    other = facts(alpine)
    other = dataclasses.replace(other, scans=(make_scan(alpine, digest="sha256:" + "cd" * 32),))
    assert run([p], other).reasons[0].rule == "require_scan"
    future = facts(alpine, finished=-timedelta(hours=1))
    assert "in the future" in run([p], future).reasons[0].message


def test_explain_lists_every_rule(juice_shop: tuple[Finding, ...]) -> None:
    p = policy(
        rules="  severity: HIGH\n  ignore_unfixed: true\n  max_scan_age: 7d\n"
        "  denylist: [CVE-1999-0001]\n  require_signed: true"
    )
    (outcome,) = run([p], facts(juice_shop)).outcomes
    names = [r for r, _, _ in outcome.rules]
    assert names == [
        "scope",
        "require_signed",
        "max_scan_age",
        "require_scan",
        "denylist",
        "severity",
        "ignore_unfixed",
    ]
    assert dict((r, ok) for r, ok, _ in outcome.rules)["severity"] is False


def test_naive_clock_is_refused() -> None:
    with pytest.raises(BadInputError, match="timezone"):
        evaluate([], facts(None), context=Context.CI, now=NOW.replace(tzinfo=None))


def test_ten_thousand_findings_against_twenty_policies_is_fast(
    juice_shop: tuple[Finding, ...],
) -> None:
    findings = tuple(
        dataclasses.replace(f, vulnerability_id=f"CVE-2099-{i:05d}")
        for i, f in enumerate(juice_shop * (10_000 // len(juice_shop) + 1))
    )[:10_000]
    ids = [f.vulnerability_id for f in findings]
    policies = [
        policy(
            f"p{i}",
            ["BLOCK", "WARN", "AUDIT"][i % 3],
            f"  severity: {['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'][i % 4]}\n"
            f"  ignore_unfixed: {str(i % 2 == 0).lower()}\n"
            f"  denylist: [CVE-2021-44228]\n" + allowlist(ids[i * 50 : i * 50 + 50]),
        )
        for i in range(20)
    ]
    image = facts(findings)
    run(policies, image)  # warm up
    elapsed = float("inf")
    for _ in range(3):  # best of three: other work on a shared CI machine only slows us down
        start = time.perf_counter()
        result = run(policies, image)
        elapsed = min(elapsed, time.perf_counter() - start)
    assert result.action is Action.BLOCK and len(result.outcomes) == 20
    assert elapsed < 0.25, (
        f"{elapsed * 1000:.1f} ms"
    )  # budget 50 ms; see benchmarks/bench_policy.py


def test_same_decisions_with_the_project_report_parser(
    shared_dir,
    juice_shop: tuple[Finding, ...],  # type: ignore[no-untyped-def]
) -> None:
    reports = pytest.importorskip("trustkit.attest.reports")
    path = shared_dir / "samples" / "trivy" / "securecodebox_juice-shop-v10.2.0.json"
    parsed = reports.parse_report(path.read_bytes()).findings
    high = policy("vulnerability-policy", rules="  severity: HIGH")
    ours = run([high], facts(juice_shop)).reasons[0]
    theirs = run([high], facts(parsed)).reasons[0]
    assert set(ours.findings) == set(theirs.findings)
    critical_fixed = policy(rules="  severity: CRITICAL\n  ignore_unfixed: true")
    assert set(run([critical_fixed], facts(parsed)).reasons[0].findings) == {
        f.vulnerability_id for f in juice_shop if f.severity is Severity.CRITICAL and f.fixable
    }


def test_verdict_json_uses_one_key_casing_and_typed_details() -> None:
    import re

    from trustkit.model import SignerIdentity, TrustEvidence
    from trustkit.model.evidence import EvidenceSource
    from trustkit.verdict import AttestationDetail, Verdict, VerdictDetails

    detail = AttestationDetail(
        scanner="trivy",
        findings=2,
        counts={"CRITICAL": 1, "HIGH": 1},
        predicate_type="https://cosign.sigstore.dev/attestation/vuln/v1",
        signer="5c" * 32,
        tag="sha256-ab.att",
    )
    evidence = TrustEvidence(
        source=EvidenceSource.TUF_COLLECTION,
        checked=True,
        verified=True,
        digest=DIGEST,
        signers=(SignerIdentity("alice", ("a1" * 32,), "targets/alice"),),
        tags=("v1",),
    )
    p = policy(rules="  require_signed: true\n  require_scan: false")
    facts = ImageFacts(reference=JUICE, digest=DIGEST, trust=evidence)
    verdict = run([p], facts).verdict(facts, context=Context.CI)
    verdict = dataclasses.replace(verdict, details=VerdictDetails(attestation=detail))
    document = verdict.to_dict()
    assert document["trust"]["tags"] == ["v1"] and document["signers"] == ["alice"]
    assert document["details"]["attestation"]["predicate_type"].startswith("https://")

    def keys(value: object, under: str = "") -> list[str]:
        if isinstance(value, dict):
            out = []
            for k, v in value.items():
                out.append(k)
                if k != "counts":  # severity names are data, not keys
                    out.extend(keys(v, k))
            return out
        if isinstance(value, list):
            return [k for item in value for k in keys(item, under)]
        return []

    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in keys(document)), keys(document)
    # the untyped form callers used before is still read, and rendered in the one casing
    legacy = Verdict(
        reference=JUICE,
        context=Context.CI,
        allowed=True,
        action=Action.ALLOW,
        details={"attestation": {**detail.to_dict(), "predicateType": "x"}},  # type: ignore[arg-type]
    )
    assert legacy.details.attestation is not None
    assert "predicateType" not in legacy.to_dict()["details"]["attestation"]
