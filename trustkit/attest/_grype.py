"""Grype JSON reports (``grype -o json``) -> ScanReport."""

from __future__ import annotations

from typing import Any

from trustkit.attest._json import (
    as_dict,
    get_dict,
    get_list,
    get_number,
    get_str,
    need_str,
    parse_time,
    split_repo_digests,
    str_list,
    with_artifact_repository,
)
from trustkit.attest.model import Cvss, Finding, FixState, ScannerInfo, ScanReport, Severity
from trustkit.errors import ReportFormatError

# Grype's fix.state values.
_FIX_STATE = {
    "fixed": FixState.FIXED,
    "not-fixed": FixState.NOT_FIXED,
    "wont-fix": FixState.WONT_FIX,
    "unknown": FixState.UNKNOWN,
}


def parse(doc: dict[str, Any], source: str) -> ScanReport:
    if "matches" not in doc:
        raise ReportFormatError(f"{source}: not a Grype report (no 'matches')")
    descriptor = get_dict(doc, "descriptor", source)
    db = get_dict(descriptor, "db", source)
    # grype < 0.88 writes db.built; newer ones nest it under db.status
    built = get_str(db, "built", source) or get_str(get_dict(db, "status", source), "built", source)
    version = get_str(descriptor, "version", source)
    if version and version.startswith("["):  # "[not provided]" in dev builds
        version = None
    target = _target(doc, source)
    findings = tuple(
        _finding(as_dict(raw, f"{source}: matches[{i}]"), f"{source}: matches[{i}]")
        for i, raw in enumerate(get_list(doc, "matches", source))
    )
    digests, repositories = split_repo_digests(
        str_list(get_list(target, "repoDigests", source), f"{source}: repoDigests")
    )
    manifest_digest = get_str(target, "manifestDigest", source)
    if manifest_digest:
        digests = (manifest_digest, *(d for d in digests if d != manifest_digest))
    artifact = get_str(target, "userInput", source)
    return ScanReport(
        format="grype",
        scanner=ScannerInfo(
            name=get_str(descriptor, "name", source) or "grype",
            version=version,
            db_updated=parse_time(built),
        ),
        findings=findings,
        artifact=artifact,
        artifact_digest=manifest_digest,
        created=parse_time(get_str(descriptor, "timestamp", source)),
        named_digests=digests,
        named_config=get_str(target, "imageID", source),
        named_repositories=with_artifact_repository(repositories, artifact),
    )


def _target(doc: dict[str, Any], source: str) -> dict[str, Any]:
    target = get_dict(doc, "source", source).get("target")
    return target if isinstance(target, dict) else {}  # a plain string for directory scans


def _finding(match: dict[str, Any], where: str) -> Finding:
    vuln = as_dict(match.get("vulnerability"), f"{where}.vulnerability")
    artifact = as_dict(match.get("artifact"), f"{where}.artifact")
    fix = get_dict(vuln, "fix", where)
    fixed_versions = str_list(get_list(fix, "versions", where), where)
    fix_state = _FIX_STATE.get(get_str(fix, "state", where) or "", FixState.UNKNOWN)
    if fix_state is FixState.UNKNOWN and fixed_versions:
        fix_state = FixState.FIXED
    vuln_id = need_str(vuln, "id", where)
    aliases: list[str] = []
    cvss = list(_cvss(vuln, where))
    for raw in get_list(match, "relatedVulnerabilities", where):
        related = as_dict(raw, f"{where}.relatedVulnerabilities")
        related_id = get_str(related, "id", where)
        if related_id and related_id != vuln_id and related_id not in aliases:
            aliases.append(related_id)
        cvss.extend(_cvss(related, where))
    locations = get_list(artifact, "locations", where)
    target = None
    if locations and isinstance(locations[0], dict):
        target = get_str(locations[0], "path", where)
    return Finding(
        vulnerability_id=vuln_id,
        package_name=need_str(artifact, "name", where),
        installed_version=get_str(artifact, "version", where) or "",
        severity=Severity.parse(get_str(vuln, "severity", where)),
        fix_state=fix_state,
        fixed_versions=fixed_versions,
        aliases=tuple(aliases),
        cvss=tuple(cvss),
        purl=get_str(artifact, "purl", where),
        title=None,
        target=target,
    )


def _cvss(vuln: dict[str, Any], where: str) -> list[Cvss]:
    out = []
    default_source = get_str(vuln, "namespace", where) or "grype"
    for raw in get_list(vuln, "cvss", where):
        entry = as_dict(raw, f"{where}.cvss")
        out.append(
            Cvss(
                source=get_str(entry, "source", where) or default_source,
                version=get_str(entry, "version", where) or "",
                score=get_number(get_dict(entry, "metrics", where), "baseScore", where),
                vector=get_str(entry, "vector", where),
            )
        )
    return out
