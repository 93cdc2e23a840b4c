"""Report parsers against real Trivy, Grype and SARIF reports; expected values come from the raw
JSON, computed here independently of the parsers."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from trustkit.attest.model import FixState, Severity
from trustkit.attest.reports import MAX_REPORT_BYTES, detect_format, parse_report
from trustkit.errors import BadInputError, InputTooLargeError, ReportFormatError

DATA = Path(__file__).parent / "data" / "reports"

TRIVY = [
    "trivy_alpine-39.json",
    "trivy_centos-7.json",
    "trivy_debian-buster.json",
    "securecodebox_juice-shop-v10.2.0.json",
    "securecodebox_securecodebox-repo.json",
]
GRYPE = ["defectdojo_issue_9618.json", "grype_TestJsonImgsPresenter.json"]
SARIF = [
    "trivy_alpine-310.sarif",
    "vexctl_nginx-trivy.sarif.json",
    "grype_TestSarifPresenter_image.sarif",
]


def load(name: str) -> Any:
    return json.loads((DATA / name).read_bytes())


def norm(text: str | None) -> str:
    value = (text or "UNKNOWN").upper()
    return {"NEGLIGIBLE": "LOW"}.get(value, value)


def expected_counts(name: str) -> Counter[str]:
    doc = load(name)
    if name in TRIVY:
        return Counter(
            norm(v.get("Severity")) for r in doc["Results"] for v in r.get("Vulnerabilities") or []
        )
    if name in GRYPE:
        return Counter(norm(m["vulnerability"].get("severity")) for m in doc["matches"])
    counts: Counter[str] = Counter()
    for run in doc["runs"]:
        rules = run["tool"]["driver"]["rules"]
        for result in run["results"]:
            text = result["message"]["text"]
            if "Severity:" not in text:  # Grype: severity is in the rule's help
                text = rules[[r["id"] for r in rules].index(result["ruleId"])]["help"]["text"]
            counts[norm(re.search(r"Severity: (\w+)", text).group(1))] += 1  # type: ignore[union-attr]
    return counts


@pytest.mark.parametrize("name", TRIVY + GRYPE + SARIF)
def test_counts_per_severity_match_the_report(name: str) -> None:
    report = parse_report((DATA / name).read_bytes(), source=name)
    want = expected_counts(name)
    got = report.counts()
    assert sum(got.values()) == sum(want.values()) == len(report.findings) > 0
    assert {k: v for k, v in got.items() if v} == dict(want)


def test_detects_each_format() -> None:
    assert {detect_format(load(n)) for n in TRIVY} == {"trivy"}
    assert {detect_format(load(n)) for n in GRYPE} == {"grype"}
    assert {detect_format(load(n)) for n in SARIF} == {"sarif"}


def test_trivy_fields_from_the_first_alpine_finding() -> None:
    report = parse_report((DATA / "trivy_alpine-39.json").read_bytes())
    first = report.findings[0]
    assert first.vulnerability_id == "CVE-2019-1549"
    assert first.package_name == "libcrypto1.1"
    assert first.installed_version == "1.1.1b-r1"
    assert first.fixed_versions == ("1.1.1d-r0",)
    assert first.fix_state is FixState.FIXED and first.fixable
    assert first.severity is Severity.MEDIUM
    assert first.purl == "pkg:apk/alpine/libcrypto1.1@1.1.1b-r1?arch=x86_64&distro=3.9.4"
    nvd3 = [c for c in first.cvss if c.source == "nvd" and c.version == "3.1"]
    assert nvd3 and nvd3[0].score == 5.3
    assert report.scanner.name == "trivy" and report.scanner.version == "dev"
    assert report.created is not None and report.created.year == 2021


def test_trivy_status_maps_to_fix_state() -> None:
    centos = parse_report((DATA / "trivy_centos-7.json").read_bytes())
    assert Counter(f.fix_state for f in centos.findings) == {
        FixState.FIXED: 2,
        FixState.WONT_FIX: 1,
    }
    juice = parse_report((DATA / "securecodebox_juice-shop-v10.2.0.json").read_bytes())
    assert sum(not f.fixable for f in juice.findings) == 9
    assert juice.artifact == "bkimminich/juice-shop:v10.2.0"


def test_grype_fix_states_aliases_and_db_age() -> None:
    report = parse_report((DATA / "defectdojo_issue_9618.json").read_bytes())
    doc = load("defectdojo_issue_9618.json")
    want = Counter(m["vulnerability"]["fix"]["state"] for m in doc["matches"])
    got = Counter(f.fix_state.value for f in report.findings)
    assert got == {
        "fixed": want["fixed"],
        "not_fixed": want["not-fixed"],
        "wont_fix": want["wont-fix"],
    }
    assert report.scanner.version == "0.96.0"
    assert (
        report.scanner.db_updated is not None
        and report.scanner.db_updated.isoformat().startswith("2024-02-22T01:23:26")
    )
    assert report.artifact_digest == doc["source"]["target"]["manifestDigest"]
    first = report.findings[0]
    assert first.purl and first.purl.startswith("pkg:rpm/rhel/avahi-libs@")
    assert first.fixed_versions == ("0:0.7-21.el8_9.1",)
    assert any(c.score == 6.2 for c in first.cvss)


def test_grype_negligible_is_low() -> None:
    doc = load("grype_TestJsonImgsPresenter.json")
    doc["matches"][1]["vulnerability"]["severity"] = "Negligible"
    report = parse_report(json.dumps(doc).encode())
    assert report.findings[1].severity is Severity.LOW


def test_sarif_package_and_versions_from_text() -> None:
    trivy = parse_report((DATA / "trivy_alpine-310.sarif").read_bytes())
    assert trivy.scanner.name == "trivy"
    assert (trivy.findings[0].package_name, trivy.findings[0].installed_version) == (
        "libcrypto1.1",
        "1.1.1c-r0",
    )
    assert trivy.findings[0].fixed_versions == ("1.1.1d-r0",)
    grype = parse_report((DATA / "grype_TestSarifPresenter_image.sarif").read_bytes())
    first = grype.findings[0]
    assert (first.vulnerability_id, first.package_name, first.installed_version) == (
        "CVE-1999-0001",
        "package-1",
        "1.1.1",
    )
    assert first.fixed_versions == ("1.2.1", "2.1.3", "3.4.0")
    assert first.severity is Severity.LOW  # from the help text, not security-severity 8.2


def test_sarif_severity_falls_back_to_tags_then_score() -> None:
    doc = load("vexctl_nginx-trivy.sarif.json")
    run = doc["runs"][0]
    rule = run["tool"]["driver"]["rules"][0]
    rule["help"]["text"] = "Package: apt"
    for r in run["results"]:
        r["message"]["text"] = re.sub(r"Severity: \w+", "", r["message"]["text"])
    report = parse_report(json.dumps(doc).encode())
    assert report.findings[0].severity is Severity.LOW  # tags ["vulnerability", "security", "LOW"]
    rule["properties"]["tags"] = []
    rule["properties"]["security-severity"] = "9.8"
    assert parse_report(json.dumps(doc).encode()).findings[0].severity is Severity.CRITICAL


def test_format_override() -> None:
    data = (DATA / "trivy_alpine-39.json").read_bytes()
    assert parse_report(data, format="trivy").format == "trivy"
    with pytest.raises(ReportFormatError, match="not a Grype report"):
        parse_report(data, format="grype")
    with pytest.raises(ReportFormatError, match="SARIF version None"):
        parse_report(data, format="sarif")
    with pytest.raises(ReportFormatError, match="unknown report format 'xml'"):
        parse_report(data, format="xml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe{", "not UTF-8"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'{"hello": 1}', "unknown report format"),
        (b'{"SchemaVersion": 1, "Results": []}', "SchemaVersion 1 is not supported"),
        (b'{"SchemaVersion": 2, "Results": {}}', "'Results' must be a list"),
        (
            b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"PkgName": "x"}]}]}',
            "'VulnerabilityID' is missing",
        ),
        (b'{"runs": [], "version": "2.1.0"}', "has no runs"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_malformed_reports_are_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(ReportFormatError, match=re.escape(message)):
        parse_report(data)


def test_vex_and_sbom_are_not_reports() -> None:
    with pytest.raises(ReportFormatError, match="CycloneDX document is not a scan report"):
        parse_report((DATA / "grype_TestCycloneDxPresenterImage.cdx.json").read_bytes())
    with pytest.raises(ReportFormatError, match="VEX document is not a scan report"):
        parse_report((DATA / "trivy_openvex.json").read_bytes())


def test_size_bound() -> None:
    big = b" " * (MAX_REPORT_BYTES + 1)
    with pytest.raises(InputTooLargeError, match="limit"):
        parse_report(big)
    assert issubclass(InputTooLargeError, BadInputError)
