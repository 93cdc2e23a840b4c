"""SARIF 2.1.0 vulnerability reports as Trivy and Grype write them -> ScanReport.

SARIF has no vulnerability fields, so both scanners put them in text: Trivy in each result's
message ("Package: apt\\nInstalled Version: 2.6.1\\nSeverity: LOW\\nFixed Version: ..."), Grype in
the rule's help text ("Severity: low\\nPackage: ...\\nVersion: ...\\nFix Version: ..."). We read
the result's lines over the rule's, then fall back to the rule's severity tag, its CVSS-style
``security-severity`` and finally the SARIF level. Results without a package (misconfigurations,
secrets) are not vulnerability findings and are skipped.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from trustkit.attest._json import (
    as_dict,
    get_dict,
    get_list,
    get_number,
    get_str,
    parse_time,
    split_repo_digests,
    str_list,
    with_artifact_repository,
)
from trustkit.attest.model import Finding, FixState, ScannerInfo, ScanReport, Severity
from trustkit.errors import ReportFormatError

_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]{0,40}?)\s*:\s*(.*?)\s*$")
_VULN_LINE = re.compile(r"^\s*Vulnerability\s+(\S+)\s*$")
_SEVERITY_NAMES = {s.name for s in Severity} | {"NEGLIGIBLE"}
# SARIF levels as Trivy assigns them (CRITICAL/HIGH -> error, MEDIUM -> warning, LOW -> note)
_LEVEL = {"error": Severity.HIGH, "warning": Severity.MEDIUM, "note": Severity.LOW}


def parse(doc: dict[str, Any], source: str) -> ScanReport:
    if doc.get("version") != "2.1.0":
        raise ReportFormatError(f"{source}: SARIF version {doc.get('version')!r} is not 2.1.0")
    runs = get_list(doc, "runs", source)
    if not runs:
        raise ReportFormatError(f"{source}: SARIF document has no runs")
    findings: list[Finding] = []
    scanner = ScannerInfo(name="unknown")
    artifact = digest = config = None
    digests: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    created = None
    for run_index, raw_run in enumerate(runs):
        where = f"{source}: runs[{run_index}]"
        run = as_dict(raw_run, where)
        driver = get_dict(get_dict(run, "tool", where), "driver", where)
        if run_index == 0:
            scanner = ScannerInfo(
                name=(get_str(driver, "name", where) or "unknown").lower(),
                version=get_str(driver, "version", where),
            )
            props = get_dict(run, "properties", where)
            artifact, digest = _artifact(props, where)
            digests, repositories = split_repo_digests(
                str_list(get_list(props, "repoDigests", where), where)
            )
            config = get_str(props, "imageID", where)
            created = _run_time(run, where)
        rules = [as_dict(r, f"{where}.rules") for r in get_list(driver, "rules", where)]
        by_id = {rid: rule for rule in rules if (rid := get_str(rule, "id", where))}
        for i, raw in enumerate(get_list(run, "results", where)):
            finding = _finding(as_dict(raw, f"{where}.results[{i}]"), rules, by_id, where)
            if finding is not None:
                findings.append(finding)
    return ScanReport(
        format="sarif",
        scanner=scanner,
        findings=tuple(findings),
        artifact=artifact,
        artifact_digest=digest,
        created=created,
        named_digests=digests,
        named_config=config,
        named_repositories=with_artifact_repository(repositories, artifact),
    )


def _run_time(run: dict[str, Any], where: str) -> datetime | None:
    """When the run ended (else started), from its invocations: SARIF's only scan time."""
    for raw in get_list(run, "invocations", where):
        invocation = as_dict(raw, f"{where}.invocations")
        moment = parse_time(get_str(invocation, "endTimeUtc", where)) or parse_time(
            get_str(invocation, "startTimeUtc", where)
        )
        if moment is not None:
            return moment
    return None


def _artifact(props: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    name = get_str(props, "imageName", where)
    digests = str_list(get_list(props, "repoDigests", where), where)
    digest = digests[0].rpartition("@")[2] if digests and "@" in digests[0] else None
    return name, digest


def _fields(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        if m := _VULN_LINE.match(line):
            out.setdefault("vulnerability", m.group(1))
        elif m := _LINE.match(line):
            out.setdefault(m.group(1).lower(), m.group(2))
    return out


def _finding(
    result: dict[str, Any],
    rules: list[dict[str, Any]],
    by_id: dict[str, dict[str, Any]],
    where: str,
) -> Finding | None:
    rule_id = get_str(result, "ruleId", where)
    rule: dict[str, Any] = {}
    index = result.get("ruleIndex")
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(rules):
        rule = rules[index]
    elif rule_id:
        rule = by_id.get(rule_id, {})
    help_fields = _fields(get_str(get_dict(rule, "help", where), "text", where))
    fields = {**help_fields, **_fields(get_str(get_dict(result, "message", where), "text", where))}
    package = fields.get("package")
    if not package:
        return None
    installed = fields.get("installed version") or fields.get("version") or ""
    fixed_text = fields.get("fixed version") or fields.get("fix version") or ""
    fixed = tuple(v.strip() for v in fixed_text.split(",") if v.strip())
    vuln_id = fields.get("vulnerability") or rule_id
    if not vuln_id:
        raise ReportFormatError(f"{where}: a result has neither ruleId nor a vulnerability id")
    return Finding(
        vulnerability_id=vuln_id,
        package_name=package,
        installed_version=installed,
        severity=_severity(fields, rule, result, where),
        fix_state=FixState.FIXED if fixed else FixState.UNKNOWN,
        fixed_versions=fixed,
        title=get_str(get_dict(rule, "shortDescription", where), "text", where),
        target=_location(result, where),
    )


def _severity(
    fields: dict[str, str], rule: dict[str, Any], result: dict[str, Any], where: str
) -> Severity:
    if text := fields.get("severity"):
        return Severity.parse(text)
    props = get_dict(rule, "properties", where)
    for tag in get_list(props, "tags", where):
        if isinstance(tag, str) and tag.upper() in _SEVERITY_NAMES:
            return Severity.parse(tag)
    score = get_number(props, "security-severity", where)
    if score is not None:
        return _from_score(score)
    level = get_str(result, "level", where) or get_str(
        get_dict(rule, "defaultConfiguration", where), "level", where
    )
    return _LEVEL.get(level or "", Severity.UNKNOWN)


def _from_score(score: float) -> Severity:
    """CVSS v3 qualitative bands, which GitHub's security-severity follows."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.UNKNOWN


def _location(result: dict[str, Any], where: str) -> str | None:
    locations = get_list(result, "locations", where)
    if not locations or not isinstance(locations[0], dict):
        return None
    physical = get_dict(locations[0], "physicalLocation", where)
    return get_str(get_dict(physical, "artifactLocation", where), "uri", where)
