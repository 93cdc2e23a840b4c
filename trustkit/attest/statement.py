"""in-toto Statements about an image's scan, and reading them back into a ScanReport.

Two predicate types:

* ``https://cosign.sigstore.dev/attestation/vuln/v1`` (default) — cosign's vuln predicate: the
  scanner's own report goes into ``scanner.result`` unchanged, as ``trivy`` and ``cosign attest
  --type vuln`` do. The VEX documents applied and the report format travel, signed, in
  ``invocation.parameters``, so a verifier re-derives exactly the suppressions the attester saw.
* ``https://in-toto.io/attestation/vulns/v0.2`` — the in-toto vulns predicate: ``scanner.result``
  is a list of ``{id, severity: [{method, score}], annotations: [...]}``; package, versions, fix
  state and suppression ride in the annotations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from trustkit.attest._json import (
    as_dict,
    format_time,
    get_dict,
    get_list,
    get_str,
    parse_time,
    str_list,
)
from trustkit.attest.model import (
    Finding,
    FixState,
    ScannerInfo,
    ScanReport,
    Severity,
    Suppression,
    VexStatus,
)
from trustkit.attest.reports import parse_report_object
from trustkit.attest.vex import VexDocument, apply_vex, parse_vex_object
from trustkit.errors import AttestationError, ReportFormatError

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"  # what cosign 2.x still writes
PREDICATE_COSIGN_VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
PREDICATE_VULNS_V02 = "https://in-toto.io/attestation/vulns/v0.2"
#: short names for the CLI's --predicate-type
PREDICATE_TYPES = {"cosign-vuln": PREDICATE_COSIGN_VULN, "vulns-v0.2": PREDICATE_VULNS_V02}

_SCANNER_URIS = {"trivy": "pkg:github/aquasecurity/trivy", "grype": "pkg:github/anchore/grype"}
_ANNOTATION = "dev.trustkit.finding"
#: in a vulns v0.2 predicate's metadata: the scanner's report time ("" when it had none)
REPORT_CREATED = "dev.trustkit.reportCreated"


@dataclasses.dataclass(frozen=True, slots=True)
class ScanStatement:
    """What a verified statement says: the report (VEX applied), when, and about what."""

    report: ScanReport
    image_digest: str
    predicate_type: str
    scan_finished_on: datetime
    scan_started_on: datetime | None


def build_statement(
    *,
    repository: str,
    image_digest: str,
    report: ScanReport,
    raw_report: Any,
    vex_docs: Sequence[VexDocument] = (),
    predicate_type: str = PREDICATE_COSIGN_VULN,
    scan_started_on: datetime | None = None,
    scan_finished_on: datetime,
    scanner_time: datetime | None = None,
) -> dict[str, Any]:
    """An in-toto Statement v1 about ``repository@image_digest`` (digest ``sha256:<hex>``)."""
    algorithm, _, hex_digest = image_digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64:
        raise AttestationError(f"cannot attest {image_digest!r}: expected a sha256 digest")
    scanner = report.scanner
    db_version = format_time(scanner.db_updated) if scanner.db_updated else ""
    metadata = {
        "scanStartedOn": format_time(scan_started_on or scan_finished_on),
        "scanFinishedOn": format_time(scan_finished_on),
    }
    scanner_uri = _SCANNER_URIS.get(scanner.name, scanner.name)
    if predicate_type == PREDICATE_COSIGN_VULN:
        predicate: dict[str, Any] = {
            "invocation": {
                "parameters": {
                    "format": report.format,
                    "vex": [{"source": doc.source, "document": doc.raw} for doc in vex_docs],
                },
                "uri": "",
                "event_id": "",
                "builder.id": "",
            },
            "scanner": {
                "uri": scanner_uri,
                "version": scanner.version or "",
                "db": {"uri": "", "version": db_version},
                "result": raw_report,
            },
            "metadata": metadata,
        }
    elif predicate_type == PREDICATE_VULNS_V02:
        predicate = {
            "scanner": {
                "uri": scanner_uri,
                "version": scanner.version or "",
                "db": {"uri": "", "version": "", "lastUpdate": db_version},
                "result": [
                    _v02_entry(f, scanner.name) for f in apply_vex(report, vex_docs).findings
                ],
            },
            # vulns v0.2 carries no report: the scanner's time travels here (empty: unknown)
            "metadata": {
                **metadata,
                REPORT_CREATED: format_time(scanner_time) if scanner_time else "",
            },
        }
    else:
        raise AttestationError(f"unsupported predicate type {predicate_type!r}")
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": repository, "digest": {"sha256": hex_digest}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def _v02_entry(finding: Finding, method: str) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "package": finding.package_name,
        "installedVersion": finding.installed_version,
        "fixedVersions": list(finding.fixed_versions),
        "fixState": finding.fix_state.value,
        "aliases": list(finding.aliases),
        "purl": finding.purl,
        "target": finding.target,
        "title": finding.title,
    }
    if finding.suppression is not None:
        s = finding.suppression
        detail["vex"] = {
            "status": s.status.value,
            "justification": s.justification,
            "statement": s.statement,
            "source": s.source,
        }
    severity = [{"method": method, "score": finding.severity.name}]
    severity += [
        {"method": f"{c.source}-cvss{c.version}", "score": str(c.score)}
        for c in finding.cvss
        if c.score is not None
    ]
    return {
        "id": finding.vulnerability_id,
        "severity": severity,
        "annotations": [{_ANNOTATION: detail}],
    }


def read_statement(statement: Any, *, image_digest: str) -> ScanStatement:
    """Check a decoded statement is a scan of ``image_digest`` and rebuild its report.

    Raises AttestationError (one line) for anything else.
    """
    doc = _shape(statement, "the statement is not a JSON object")
    if doc.get("_type") not in (STATEMENT_V1, STATEMENT_V01):
        raise AttestationError(f"not an in-toto Statement (_type {doc.get('_type')!r})")
    want = image_digest.partition(":")[2]
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise AttestationError("the statement has no subject")
    digests = [
        s["digest"].get("sha256")
        for s in subjects
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    ]
    if want not in digests:
        shown = ", ".join(f"sha256:{d}"[:19] for d in digests if isinstance(d, str)) or "nothing"
        raise AttestationError(f"the statement is about {shown}, not about {image_digest[:19]}…")
    predicate_type = doc.get("predicateType")
    predicate = doc.get("predicate")
    if not isinstance(predicate, dict):
        raise AttestationError(
            f"the predicate is not a JSON object (got {type(predicate).__name__})"
        )
    try:
        if predicate_type == PREDICATE_COSIGN_VULN:
            report = _read_cosign_vuln(predicate)
        elif predicate_type == PREDICATE_VULNS_V02:
            report = _read_vulns_v02(predicate)
            report = dataclasses.replace(report, created=_v02_scanner_time(predicate))
        else:
            raise AttestationError(f"predicate type {predicate_type!r} is not a scan result")
    except ReportFormatError as exc:
        raise AttestationError(f"the predicate is not the expected shape: {exc}") from None
    metadata = get_dict(predicate, "metadata", "predicate")
    finished = parse_time(get_str(metadata, "scanFinishedOn", "predicate.metadata"))
    if finished is None:
        raise AttestationError("the predicate has no valid metadata.scanFinishedOn")
    started = parse_time(get_str(metadata, "scanStartedOn", "predicate.metadata"))
    return ScanStatement(report, image_digest, str(predicate_type), finished, started)


def _v02_scanner_time(predicate: dict[str, Any]) -> datetime | None:
    """trustkit's own statements say the scanner's time (possibly unknown); another tool's
    ``scanFinishedOn`` is the scan's finish by the predicate's definition."""
    metadata = get_dict(predicate, "metadata", "predicate")
    if REPORT_CREATED in metadata:
        return parse_time(get_str(metadata, REPORT_CREATED, "predicate.metadata"))
    return parse_time(get_str(metadata, "scanFinishedOn", "predicate.metadata"))


def _shape(value: Any, message: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AttestationError(message)
    return value


def _read_cosign_vuln(predicate: dict[str, Any]) -> ScanReport:
    scanner = get_dict(predicate, "scanner", "predicate")
    result = scanner.get("result")
    if not isinstance(result, dict):
        raise AttestationError("the predicate's scanner.result is not a scan report")
    params = get_dict(predicate, "invocation", "predicate").get("parameters")
    params = params if isinstance(params, dict) else {}
    fmt = params.get("format")
    report = parse_report_object(
        result, format=fmt if isinstance(fmt, str) else "auto", source="scanner.result"
    )
    vex_docs = []
    for i, raw in enumerate(get_list(params, "vex", "invocation.parameters")):
        entry = as_dict(raw, f"invocation.parameters.vex[{i}]")
        source = get_str(entry, "source", "invocation.parameters.vex") or f"attested VEX #{i + 1}"
        vex_docs.append(parse_vex_object(entry.get("document"), source))
    report = apply_vex(report, vex_docs)
    db_version = get_str(get_dict(scanner, "db", "predicate.scanner"), "version", "scanner.db")
    if report.scanner.db_updated is None and (db_updated := parse_time(db_version)):
        report = dataclasses.replace(
            report, scanner=dataclasses.replace(report.scanner, db_updated=db_updated)
        )
    return report


def _read_vulns_v02(predicate: dict[str, Any]) -> ScanReport:
    scanner = get_dict(predicate, "scanner", "predicate")
    where = "predicate.scanner"
    db = get_dict(scanner, "db", where)
    findings = []
    for i, raw in enumerate(get_list(scanner, "result", where)):
        entry = as_dict(raw, f"{where}.result[{i}]")
        detail: dict[str, Any] = {}
        for note in get_list(entry, "annotations", where):
            if isinstance(note, dict) and isinstance(note.get(_ANNOTATION), dict):
                detail = note[_ANNOTATION]
        severity = Severity.UNKNOWN
        for s in get_list(entry, "severity", where):
            parsed = Severity.parse(s.get("score") if isinstance(s, dict) else None)
            severity = max(severity, parsed)
        vex = get_dict(detail, "vex", where)
        suppression = None
        if vex:
            try:
                status = VexStatus(get_str(vex, "status", where) or "")
            except ValueError:
                raise ReportFormatError(f"{where}.result[{i}]: unknown VEX status") from None
            suppression = Suppression(
                status,
                get_str(vex, "justification", where),
                get_str(vex, "statement", where),
                get_str(vex, "source", where),
            )
        try:
            fix_state = FixState(get_str(detail, "fixState", where) or "unknown")
        except ValueError:
            raise ReportFormatError(f"{where}.result[{i}]: unknown fixState") from None
        vuln_id = get_str(entry, "id", where)
        if not vuln_id:
            raise ReportFormatError(f"{where}.result[{i}]: no id")
        findings.append(
            Finding(
                vulnerability_id=vuln_id,
                package_name=get_str(detail, "package", where) or "",
                installed_version=get_str(detail, "installedVersion", where) or "",
                severity=severity,
                fix_state=fix_state,
                fixed_versions=str_list(get_list(detail, "fixedVersions", where), where),
                aliases=str_list(get_list(detail, "aliases", where), where),
                purl=get_str(detail, "purl", where),
                title=get_str(detail, "title", where),
                target=get_str(detail, "target", where),
                suppression=suppression,
            )
        )
    uri = get_str(scanner, "uri", where) or "unknown"
    name = next((k for k, v in _SCANNER_URIS.items() if v == uri), uri)
    return ScanReport(
        format="vulns-v0.2",
        scanner=ScannerInfo(
            name=name,
            version=get_str(scanner, "version", where),
            db_updated=parse_time(get_str(db, "lastUpdate", where)),
        ),
        findings=tuple(findings),
    )
