"""Scanner reports (Trivy JSON, Grype JSON, SARIF 2.1.0) -> one ScanReport.

Every report is untrusted: it is size-bounded, parsed with the standard ``json`` module and
walked with type-checked accessors, so malformed input ends in ``ReportFormatError`` and never in
a traceback. The format is detected from the document's shape unless the caller names it.
"""

from __future__ import annotations

from typing import Any

from trustkit.attest import _grype, _sarif, _trivy
from trustkit.attest._json import gc_paused, load_bounded_json
from trustkit.attest.model import ScanReport
from trustkit.errors import ReportFormatError

MAX_REPORT_BYTES = 64 * 1024 * 1024
FORMATS = ("trivy", "grype", "sarif")

_PARSERS = {"trivy": _trivy.parse, "grype": _grype.parse, "sarif": _sarif.parse}


def detect_format(obj: Any) -> str:
    """ "trivy", "grype" or "sarif" from the document's shape; ReportFormatError otherwise."""
    if not isinstance(obj, dict):
        raise ReportFormatError(
            f"not a scan report: the document is a JSON {type(obj).__name__}, not an object"
        )
    if "SchemaVersion" in obj and ("Results" in obj or "ArtifactName" in obj):
        return "trivy"
    if "matches" in obj and ("descriptor" in obj or "source" in obj):
        return "grype"
    if "runs" in obj and ("sarif" in str(obj.get("$schema", "")).lower() or "version" in obj):
        return "sarif"
    if obj.get("bomFormat") == "CycloneDX":
        raise ReportFormatError(
            "a CycloneDX document is not a scan report (pass VEX documents with --vex)"
        )
    if "statements" in obj or "csaf_version" in str(obj.get("document", "")):
        raise ReportFormatError("a VEX document is not a scan report (pass it with --vex)")
    raise ReportFormatError(
        "unknown report format (expected Trivy JSON, Grype JSON or SARIF 2.1.0)"
    )


def parse_report(data: bytes, *, format: str = "auto", source: str = "<report>") -> ScanReport:
    """Parse an untrusted report of at most MAX_REPORT_BYTES bytes."""
    check_format_name(format)
    obj = load_bounded_json(data, limit=MAX_REPORT_BYTES, what=source)
    return parse_report_object(obj, format=format, source=source)


def parse_report_object(obj: Any, *, format: str = "auto", source: str = "<report>") -> ScanReport:
    """Parse an already-decoded report (e.g. the ``result`` inside an attestation)."""
    name = check_format_name(format)
    if name == "auto":
        try:
            name = detect_format(obj)
        except ReportFormatError as exc:
            raise ReportFormatError(f"{source}: {exc}") from None
    if not isinstance(obj, dict):
        raise ReportFormatError(f"{source}: a {name} report must be a JSON object")
    try:
        with gc_paused():
            return _PARSERS[name](obj, source)
    except RecursionError:
        raise ReportFormatError(f"{source}: report is nested too deeply") from None


def check_format_name(format: str) -> str:
    if format != "auto" and format not in _PARSERS:
        raise ReportFormatError(
            f"unknown report format {format!r} (choose auto, {', '.join(FORMATS)})"
        )
    return format
