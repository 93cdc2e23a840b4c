"""Renderers: SARIF valid against the official 2.1.0 schema, JUnit parseable, annotations."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from fixtures.policy import DIGEST, NOW, make_scan

from trustkit.attest.model import Finding, Severity
from trustkit.errors import FailureKind
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence
from trustkit.policy import ImageFacts, evaluate, load_policy_text
from trustkit.report_formats import (
    github_annotations,
    render_json,
    render_junit,
    render_sarif,
    render_table,
)
from trustkit.verdict import Action, Context, Reason, Verdict

JUICE = "docker.io/bkimminich/juice-shop:v10.2.0"


def _policy(name: str, action: str, rules: str):  # type: ignore[no-untyped-def]
    return load_policy_text(
        f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\naction: {action}\n"
        f"rules:\n{rules}\n"
    )


@pytest.fixture
def verdicts(juice_shop: tuple[Finding, ...]) -> list[Verdict]:
    policies = [
        _policy("block-critical", "BLOCK", "  severity: CRITICAL"),
        _policy("warn-high", "WARN", "  severity: HIGH"),
        _policy("audit-low", "AUDIT", "  severity: LOW"),
        _policy("signed", "BLOCK", "  require_signed: true\n  require_scan: false"),
    ]
    out = []
    for reference, findings, trust in (
        (
            JUICE,
            juice_shop,
            TrustEvidence(
                EvidenceSource.TUF_COLLECTION,
                checked=True,
                verified=False,
                failure=FailureKind.BAD_SIGNATURE,
                message="no signature",
            ),
        ),
        (
            "localhost:5000/team/clean:1",
            (),
            TrustEvidence(
                EvidenceSource.TUF_COLLECTION,
                checked=True,
                verified=True,
                signers=(SignerIdentity("releases"),),
            ),
        ),
    ):
        facts = ImageFacts(reference, DIGEST, trust, (make_scan(findings),))
        out.append(
            evaluate(policies, facts, context=Context.CI, now=NOW).verdict(
                facts, context=Context.CI
            )
        )
    trust_refusal = Verdict(
        reference="docker.io/library/alpine:3.19",
        context=Context.CI,
        allowed=False,
        action=Action.BLOCK,
        reasons=(Reason(rule="trust", message="alpine:3.19 is not signed", remedy="sign it"),),
    )
    return [*out, trust_refusal]


def test_sarif_is_valid_and_has_one_error_per_blocking_finding(
    verdicts: list[Verdict], data_dir: Path, juice_shop: tuple[Finding, ...]
) -> None:
    schema = json.loads((data_dir / "sarif-schema-2.1.0.json").read_text())
    document = json.loads(render_sarif(verdicts))
    jsonschema.Draft4Validator(schema).validate(document)
    assert document["version"] == "2.1.0"
    (run,) = document["runs"]
    results = run["results"]
    errors = [r for r in results if r["level"] == "error"]
    critical = [f for f in juice_shop if f.severity is Severity.CRITICAL]
    finding_errors = [r for r in errors if r["properties"]["rule"] == "severity"]
    assert len(finding_errors) == len(critical)
    assert {r["properties"]["vulnerability"] for r in finding_errors} == {
        f.vulnerability_id for f in critical
    }
    # one rule per vulnerability (as trivy writes it), so code scanning can rank it
    assert {r["ruleId"] for r in finding_errors} == {f.vulnerability_id for f in critical}
    # blocking rules without findings: unsigned juice-shop, and the trust refusal of alpine
    assert {r["ruleId"] for r in errors if r["properties"]["rule"] != "severity"} == {
        "trustkit/require_signed",
        "trustkit/trust",
    }
    warnings = [r for r in results if r["level"] == "warning"]
    assert len(warnings) == sum(1 for f in juice_shop if f.severity >= Severity.HIGH)
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert all(rule_ids[r["ruleIndex"]] == r["ruleId"] for r in results)
    fingerprints = [r["partialFingerprints"]["trustkitFinding/v1"] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)
    # a registry port must not turn the artifact location into a URI scheme
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert all(":" not in u.split("/")[0] for u in uris)


def test_sarif_of_allowed_images_is_valid_and_empty(data_dir: Path) -> None:
    schema = json.loads((data_dir / "sarif-schema-2.1.0.json").read_text())
    ok = Verdict(
        reference="docker.io/library/alpine:1",
        context=Context.CI,
        allowed=True,
        action=Action.ALLOW,
    )
    document = json.loads(render_sarif([ok]))
    jsonschema.Draft4Validator(schema).validate(document)
    assert document["runs"][0]["results"] == []


def test_junit_parses_with_one_case_per_image_and_policy(verdicts: list[Verdict]) -> None:
    root = ET.fromstring(render_junit(verdicts))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "bkimminich/juice-shop:v10.2.0",
        "localhost:5000/team/clean:1",
        "alpine:3.19",
    ]
    juice = suites[0]
    cases = {c.get("name"): c for c in juice.findall("testcase")}
    assert set(cases) == {"block-critical", "warn-high", "audit-low", "signed"}
    assert cases["block-critical"].find("failure") is not None
    assert cases["signed"].find("failure") is not None
    assert cases["warn-high"].find("failure") is None
    assert "[WARN]" in (cases["warn-high"].findtext("system-out") or "")
    assert juice.get("failures") == "2" and juice.get("tests") == "4"
    clean = suites[1]
    assert all(c.find("failure") is None for c in clean.findall("testcase"))
    (trust_case,) = suites[2].findall("testcase")
    assert trust_case.get("name") == "content-trust"
    assert trust_case.find("failure") is not None
    assert root.get("failures") == "3"


def test_json_is_the_verdicts_with_an_overall_answer(verdicts: list[Verdict]) -> None:
    document = json.loads(render_json(verdicts))
    assert document["allowed"] is False and document["action"] == "BLOCK"
    assert [v["reference"] for v in document["verdicts"]] == [v.reference for v in verdicts]
    juice = document["verdicts"][0]
    severity = next(r for r in juice["reasons"] if r["rule"] == "severity")
    assert severity["affected"][0]["package"]
    assert json.loads(render_json(verdicts[1:2]))["allowed"] is True


def test_table_shows_reasons_and_explains_rules(verdicts: list[Verdict]) -> None:
    plain = render_table(verdicts, explain=False)
    assert "bkimminich/juice-shop:v10.2.0" in plain and "BLOCK" in plain
    assert "require_signed" in plain and "remedy" not in plain.lower().split("reason")[0]
    assert "policy block-critical: CRITICAL" not in plain
    explained = render_table(verdicts, explain=True, width=200)
    assert "policy block-critical: BLOCK" in explained
    assert "FAIL" in explained and "pass" in explained


def test_github_annotations_escape_and_level(verdicts: list[Verdict]) -> None:
    lines = github_annotations(verdicts)
    assert any(line.startswith("::error title=") for line in lines)
    assert any(line.startswith("::warning title=") for line in lines)
    assert any(line.startswith("::notice title=") for line in lines)
    for line in lines:
        _, command, rest = line.split("::", 2)
        assert "\n" not in line
        assert command.count(",") == 0 and command.count(":") == 0  # properties escaped
        assert rest
    weird = Verdict(
        reference="docker.io/library/x:1",
        context=Context.CI,
        allowed=False,
        action=Action.BLOCK,
        reasons=(Reason(rule="trust", message="50% bad\nsecond line, really"),),
    )
    (line,) = github_annotations([weird])
    assert line.endswith("::50%25 bad%0Asecond line, really")


def test_sarif_rules_rank_for_code_scanning(
    verdicts: list[Verdict], juice_shop: tuple[Finding, ...]
) -> None:
    """GitHub shows Critical/High only from ``security-severity`` on a rule tagged security."""
    document = json.loads(render_sarif(verdicts))
    (run,) = document["runs"]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    by_id = {f.vulnerability_id: f for f in juice_shop}
    vulnerability_rules = [r for rule_id, r in rules.items() if rule_id in by_id]
    assert vulnerability_rules
    for rule in vulnerability_rules:
        finding = by_id[rule["id"]]
        properties = rule["properties"]
        assert "security" in properties["tags"]
        score = float(properties["security-severity"])
        if finding.severity is Severity.CRITICAL:
            assert score >= 9.0
        elif finding.severity is Severity.HIGH:
            assert 7.0 <= score < 9.0 or any((c.score or 0) >= 7.0 for c in finding.cvss)
        assert "Remedy:" in rule["help"]["text"]
    # every finding result names its own remedy (a fixed version, or how to waive it)
    for result in run["results"]:
        if result["ruleId"] in by_id:
            properties = result["properties"]
            text = result["message"]["text"]
            if properties["fixedVersions"]:
                assert f"upgrade {properties['package']} to" in text
            else:
                assert "allowlist" in text
