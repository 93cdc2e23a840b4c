"""VEX documents mark findings as suppressed; nothing is dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustkit.attest.model import Finding, FixState, ScannerInfo, ScanReport, Severity, VexStatus
from trustkit.attest.reports import parse_report
from trustkit.attest.vex import apply_vex, parse_purl, parse_vex
from trustkit.errors import ReportFormatError

DATA = Path(__file__).parent / "data" / "reports"


def vex(name: str) -> object:
    return parse_vex((DATA / name).read_bytes(), source=name)


def report(*findings: Finding) -> ScanReport:
    return ScanReport(format="trivy", scanner=ScannerInfo("trivy"), findings=findings)


def finding(vuln: str, purl: str | None, name: str, version: str, **kw: object) -> Finding:
    return Finding(vuln, name, version, Severity.CRITICAL, FixState.NOT_FIXED, purl=purl, **kw)  # type: ignore[arg-type]


SPRING = finding(
    "CVE-2021-44228",
    "pkg:maven/org.springframework.boot/spring-boot@2.6.0",
    "org.springframework.boot:spring-boot",
    "2.6.0",
)
OTHER_PKG = finding(
    "CVE-2021-44228", "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "log4j-core", "2.14.1"
)


def test_openvex_suppresses_only_the_named_package() -> None:
    out = apply_vex(
        report(SPRING, OTHER_PKG), [parse_vex((DATA / "trivy_openvex.json").read_bytes())]
    )
    assert len(out.findings) == 2  # kept, not dropped
    spring, other = out.findings
    assert spring.suppressed and spring.suppression is not None
    assert spring.suppression.status is VexStatus.NOT_AFFECTED
    assert spring.suppression.justification == "vulnerable_code_not_in_execute_path"
    assert not other.suppressed
    assert out.counts() == {"CRITICAL": 1, "HIGH": 0, "MEDIUM": 0, "LOW": 0, "UNKNOWN": 0}
    assert out.counts(include_suppressed=True)["CRITICAL"] == 2


def test_openvex_oci_product_with_subcomponents() -> None:
    bash = finding("CVE-2022-3715", "pkg:deb/debian/bash@5.1-2?arch=amd64", "bash", "5.1-2")
    zlib = finding("CVE-2022-3715", "pkg:deb/debian/zlib1g@1.2?arch=amd64", "zlib1g", "1.2")
    out = apply_vex(report(bash, zlib), [parse_vex((DATA / "trivy_openvex-oci.json").read_bytes())])
    assert [f.suppressed for f in out.findings] == [True, False]


def test_alias_matches() -> None:
    ghsa = finding(
        "GHSA-jfh8-c2jp-5v3q",
        "pkg:maven/org.springframework.boot/spring-boot@2.6.0",
        "spring-boot",
        "2.6.0",
        aliases=("CVE-2021-44228",),
    )
    out = apply_vex(report(ghsa), [parse_vex((DATA / "trivy_openvex.json").read_bytes())])
    assert out.findings[0].suppressed


def test_cyclonedx_vex_bom_link_refs() -> None:
    libstd = finding(
        "CVE-2022-27943",
        "pkg:deb/ubuntu/libstdc%2B%2B6@12.3.0-1ubuntu1~22.04?arch=amd64",
        "libstdc++6",
        "12.3.0-1ubuntu1~22.04",
    )
    out = apply_vex(
        report(SPRING, libstd), [parse_vex((DATA / "trivy_cyclonedx.json").read_bytes())]
    )
    assert all(f.suppressed for f in out.findings)
    assert out.findings[0].suppression and out.findings[0].suppression.justification == (
        "code_not_reachable"
    )


def test_cyclonedx_version_must_match() -> None:
    old = finding(
        "CVE-2020-25649",
        "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.0?type=jar",
        "jackson-databind",
        "2.9.0",
    )
    doc = parse_vex((DATA / "cyclonedx-bom-examples_VEX_vex.json").read_bytes())
    assert not apply_vex(report(old), [doc]).findings[0].suppressed


def test_csaf_product_tree() -> None:
    f = finding(
        "CVE-2024-0001",
        "pkg:golang/github.com/aquasecurity/go-transitive@v4.0.0",
        "github.com/aquasecurity/go-transitive",
        "v4.0.0",
    )
    out = apply_vex(report(f), [parse_vex((DATA / "trivy_csaf.json").read_bytes())])
    supp = out.findings[0].suppression
    assert supp is not None and supp.status is VexStatus.NOT_AFFECTED
    assert supp.statement == "vulnerable_code_not_in_execute_path"


def test_fixed_status_and_under_investigation() -> None:
    git = finding("CVE-2014-123456", "pkg:apk/distro/git@2.39.0-r1?arch=x86_64", "git", "2.39.0-r1")
    out = apply_vex(report(git), [parse_vex((DATA / "vexctl_demo.vex.json").read_bytes())])
    assert out.findings[0].suppressed and out.findings[0].suppression.status is VexStatus.FIXED  # type: ignore[union-attr]
    probe = finding("CVE-1234-5678", None, "nginx", "1.0")
    out = apply_vex(report(probe), [parse_vex((DATA / "vexctl_images.vex.json").read_bytes())])
    # recorded, but under investigation does not suppress
    assert out.findings[0].suppression is not None and not out.findings[0].suppressed


def test_vex_on_a_real_report() -> None:
    juice = parse_report((DATA / "securecodebox_juice-shop-v10.2.0.json").read_bytes())
    target = juice.findings[0]
    doc = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "statements": [
            {
                "vulnerability": {"name": target.vulnerability_id},
                "products": [{"@id": "pkg:oci/juice-shop"}],
                "status": "not_affected",
                "justification": "component_not_present",
            }
        ],
    }
    out = apply_vex(juice, [parse_vex(json.dumps(doc).encode())])
    hits = [f for f in out.findings if f.vulnerability_id == target.vulnerability_id]
    assert hits and all(f.suppressed for f in hits)
    assert len(out.findings) == len(juice.findings)
    assert sum(out.counts().values()) == len(juice.findings) - len(hits)


def test_purl_parsing() -> None:
    p = parse_purl("pkg:deb/ubuntu/libstdc%2B%2B6@12.3.0?arch=amd64#sub")
    assert p is not None and (p.type, p.name, p.version) == ("deb", "ubuntu/libstdc++6", "12.3.0")
    assert parse_purl("nginx") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{}", "unknown VEX format"),
        (b"nope", "not valid JSON"),
        (
            b'{"@context": "https://openvex.dev/ns", "statements": [{"vulnerability": "X", '
            b'"status": "maybe"}]}',
            "unknown VEX status 'maybe'",
        ),
    ],
)
def test_bad_vex(data: bytes, message: str) -> None:
    with pytest.raises(ReportFormatError, match=message):
        parse_vex(data)
