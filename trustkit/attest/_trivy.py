"""Trivy JSON reports (``trivy image --format json``, SchemaVersion 2) -> ScanReport."""

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

# Trivy's Status values (pkg/types/vulnerability status) -> our fix state.
_STATUS = {
    "fixed": FixState.FIXED,
    "affected": FixState.NOT_FIXED,
    "fix_deferred": FixState.NOT_FIXED,
    "will_not_fix": FixState.WONT_FIX,
    "end_of_life": FixState.WONT_FIX,
}


def parse(doc: dict[str, Any], source: str) -> ScanReport:
    version = doc.get("SchemaVersion")
    if version != 2:
        raise ReportFormatError(
            f"{source}: Trivy report SchemaVersion {version!r} is not supported (need 2)"
        )
    metadata = get_dict(doc, "Metadata", source)
    trivy = get_dict(doc, "Trivy", source)
    findings: list[Finding] = []
    for r_index, raw_result in enumerate(get_list(doc, "Results", source)):
        where = f"{source}: Results[{r_index}]"
        result = as_dict(raw_result, where)
        target = get_str(result, "Target", where)
        for v_index, raw in enumerate(get_list(result, "Vulnerabilities", where)):
            findings.append(_finding(as_dict(raw, where), target, f"{where}[{v_index}]"))
    repo_digests = str_list(get_list(metadata, "RepoDigests", source), f"{source}: RepoDigests")
    digests, repositories = split_repo_digests(repo_digests)
    artifact = get_str(doc, "ArtifactName", source)
    return ScanReport(
        format="trivy",
        scanner=ScannerInfo(name="trivy", version=get_str(trivy, "Version", source)),
        findings=tuple(findings),
        artifact=artifact,
        artifact_digest=digests[0] if digests else None,
        created=parse_time(get_str(doc, "CreatedAt", source)),
        named_digests=digests,
        named_config=get_str(metadata, "ImageID", source),
        named_repositories=with_artifact_repository(repositories, artifact),
    )


def _finding(v: dict[str, Any], target: str | None, where: str) -> Finding:
    fixed = get_str(v, "FixedVersion", where)
    fixed_versions = tuple(p.strip() for p in fixed.split(",") if p.strip()) if fixed else ()
    status = get_str(v, "Status", where)
    fix_state = _STATUS.get(status or "", FixState.UNKNOWN)
    if fix_state is FixState.UNKNOWN and fixed_versions:
        fix_state = FixState.FIXED  # reports from before Trivy wrote Status
    identifier = get_dict(v, "PkgIdentifier", where)
    return Finding(
        vulnerability_id=need_str(v, "VulnerabilityID", where),
        package_name=need_str(v, "PkgName", where),
        installed_version=get_str(v, "InstalledVersion", where) or "",
        severity=Severity.parse(get_str(v, "Severity", where)),
        fix_state=fix_state,
        fixed_versions=fixed_versions,
        aliases=str_list(get_list(v, "VendorIDs", where), where),
        cvss=_cvss(get_dict(v, "CVSS", where), where),
        purl=get_str(identifier, "PURL", where),
        title=get_str(v, "Title", where),
        target=target,
    )


_CVSS_FIELDS = (
    ("V40Vector", "V40Score", "4.0"),
    ("V3Vector", "V3Score", "3.x"),
    ("V2Vector", "V2Score", "2.0"),
)


def _cvss(table: dict[str, Any], where: str) -> tuple[Cvss, ...]:
    out: list[Cvss] = []
    for source, raw in table.items():
        entry = as_dict(raw, f"{where}: CVSS.{source}")
        for vector_key, score_key, default_version in _CVSS_FIELDS:
            if vector_key not in entry and score_key not in entry:
                continue
            vector = get_str(entry, vector_key, where)
            score = get_number(entry, score_key, where)
            if vector is None and score is None:
                continue
            version = default_version
            if vector and vector.startswith("CVSS:"):
                version = vector[5:].partition("/")[0]
            out.append(Cvss(source=source, version=version, score=score, vector=vector))
    return tuple(out)
