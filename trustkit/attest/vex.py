"""VEX documents (OpenVEX, CycloneDX VEX, CSAF VEX) -> suppressions on findings.

A finding matched by a ``not_affected`` or ``fixed`` statement is kept and marked with a
``Suppression``; it is never dropped, so reports and policies can still show it. A statement
matches a finding when one of the finding's ids (id or alias) is the statement's vulnerability
and, if the statement names packages (package URLs), the finding's package is one of them.
Statements that name only the product (an image reference or ``pkg:oci`` purl) apply to every
package of the image the VEX was supplied for. Later statements override earlier ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from trustkit.attest._json import (
    as_dict,
    get_dict,
    get_list,
    get_str,
    load_bounded_json,
)
from trustkit.attest.model import Finding, ScanReport, Suppression, VexStatus
from trustkit.errors import ReportFormatError

MAX_VEX_BYTES = 16 * 1024 * 1024

_CDX_STATE = {
    "not_affected": VexStatus.NOT_AFFECTED,
    "false_positive": VexStatus.NOT_AFFECTED,
    "resolved": VexStatus.FIXED,
    "resolved_with_pedigree": VexStatus.FIXED,
    "exploitable": VexStatus.AFFECTED,
    "in_triage": VexStatus.UNDER_INVESTIGATION,
}
_CSAF_STATUS = {
    "known_not_affected": VexStatus.NOT_AFFECTED,
    "fixed": VexStatus.FIXED,
    "known_affected": VexStatus.AFFECTED,
    "under_investigation": VexStatus.UNDER_INVESTIGATION,
}


@dataclass(frozen=True, slots=True)
class Purl:
    type: str
    name: str  # namespace/name, lower-cased and percent-decoded
    version: str | None


@dataclass(frozen=True, slots=True)
class VexStatement:
    vulnerability: str
    status: VexStatus
    #: packages the statement is limited to; empty = every package of the product
    packages: tuple[Purl, ...] = ()
    justification: str | None = None
    statement: str | None = None


@dataclass(frozen=True, slots=True)
class VexDocument:
    format: str  # "openvex", "cyclonedx", "csaf"
    source: str
    statements: tuple[VexStatement, ...]
    raw: Any = dataclasses.field(default=None, compare=False, repr=False)


def parse_vex(data: bytes, *, source: str = "<vex>") -> VexDocument:
    """Parse an untrusted VEX document of at most MAX_VEX_BYTES bytes."""
    return parse_vex_object(load_bounded_json(data, limit=MAX_VEX_BYTES, what=source), source)


def parse_vex_object(obj: Any, source: str = "<vex>") -> VexDocument:
    doc = as_dict(obj, f"{source}: a VEX document")
    try:
        if "openvex" in str(doc.get("@context", "")):
            return VexDocument("openvex", source, _openvex(doc, source), doc)
        if doc.get("bomFormat") == "CycloneDX":
            return VexDocument("cyclonedx", source, _cyclonedx(doc, source), doc)
        if "csaf_version" in get_dict(doc, "document", source):
            return VexDocument("csaf", source, _csaf(doc, source), doc)
    except RecursionError:
        raise ReportFormatError(f"{source}: VEX document is nested too deeply") from None
    raise ReportFormatError(
        f"{source}: unknown VEX format (expected OpenVEX, CycloneDX VEX or CSAF VEX)"
    )


def parse_purl(text: str) -> Purl | None:
    """A package URL's type, namespace/name and version; None if ``text`` is not a purl."""
    if not text.startswith("pkg:"):
        return None
    body = text[4:].partition("#")[0].partition("?")[0].strip("/")
    path, _, version = body.rpartition("@") if "@" in body else (body, "", "")
    type_, _, name = path.partition("/")
    if not type_ or not name:
        return None
    return Purl(type_.lower(), unquote(name).lower(), unquote(version) or None)


def _openvex(doc: dict[str, Any], source: str) -> tuple[VexStatement, ...]:
    out = []
    for i, raw in enumerate(get_list(doc, "statements", source)):
        where = f"{source}: statements[{i}]"
        st = as_dict(raw, where)
        vuln = st.get("vulnerability")
        vuln_id = vuln if isinstance(vuln, str) else get_str(as_dict(vuln, where), "name", where)
        if not vuln_id:
            raise ReportFormatError(f"{where}: no vulnerability name")
        status = _status(get_str(st, "status", where), where)
        packages: list[Purl] = []
        for product in get_list(st, "products", where):
            product_id, subs = _openvex_product(product, where)
            purl = parse_purl(product_id)
            if purl is not None and purl.type != "oci":
                packages.append(purl)  # the product itself is a package
            for sub in subs:
                if (sub_purl := parse_purl(sub)) is not None:
                    packages.append(sub_purl)
        out.append(
            VexStatement(
                vulnerability=vuln_id,
                status=status,
                packages=tuple(packages),
                justification=get_str(st, "justification", where),
                statement=get_str(st, "impact_statement", where)
                or get_str(st, "action_statement", where)
                or get_str(st, "status_notes", where),
            )
        )
    return tuple(out)


def _openvex_product(product: Any, where: str) -> tuple[str, list[str]]:
    if isinstance(product, str):  # OpenVEX before 0.2 lists plain identifiers
        return product, []
    entry = as_dict(product, f"{where}.products[]")
    subs = []
    for sub in get_list(entry, "subcomponents", where):
        sub_id = sub if isinstance(sub, str) else get_str(as_dict(sub, where), "@id", where)
        if sub_id:
            subs.append(sub_id)
    return get_str(entry, "@id", where) or "", subs


def _status(text: str | None, where: str) -> VexStatus:
    try:
        return VexStatus(text or "")
    except ValueError:
        raise ReportFormatError(f"{where}: unknown VEX status {text!r}") from None


def _cyclonedx(doc: dict[str, Any], source: str) -> tuple[VexStatement, ...]:
    out = []
    for i, raw in enumerate(get_list(doc, "vulnerabilities", source)):
        where = f"{source}: vulnerabilities[{i}]"
        vuln = as_dict(raw, where)
        vuln_id = get_str(vuln, "id", where)
        analysis = get_dict(vuln, "analysis", where)
        state = get_str(analysis, "state", where)
        if not vuln_id or state is None:
            continue  # a plain vulnerability listing, not a VEX statement
        if state not in _CDX_STATE:
            raise ReportFormatError(f"{where}: unknown CycloneDX analysis state {state!r}")
        packages = []
        for affect in get_list(vuln, "affects", where):
            ref = get_str(as_dict(affect, where), "ref", where) or ""
            # BOM-links look like urn:cdx:<serial>/<version>#<bom-ref>; bom-refs are often purls
            purl = parse_purl(unquote(ref.rpartition("#")[2]) if "#" in ref else ref)
            if purl is not None:
                packages.append(purl)
        out.append(
            VexStatement(
                vulnerability=vuln_id,
                status=_CDX_STATE[state],
                packages=tuple(packages),
                justification=get_str(analysis, "justification", where),
                statement=get_str(analysis, "detail", where),
            )
        )
    return tuple(out)


def _csaf(doc: dict[str, Any], source: str) -> tuple[VexStatement, ...]:
    purls: dict[str, Purl] = {}
    _csaf_products(get_dict(doc, "product_tree", source), purls, source, depth=0)
    out = []
    for i, raw in enumerate(get_list(doc, "vulnerabilities", source)):
        where = f"{source}: vulnerabilities[{i}]"
        vuln = as_dict(raw, where)
        vuln_id = get_str(vuln, "cve", where)
        if not vuln_id:
            continue
        details = [
            d
            for t in get_list(vuln, "threats", where)
            if isinstance(t, dict) and t.get("category") == "impact"
            if (d := get_str(t, "details", where))
        ]
        labels = [
            label
            for f in get_list(vuln, "flags", where)
            if isinstance(f, dict)
            if (label := get_str(f, "label", where))
        ]
        for key, status in _CSAF_STATUS.items():
            ids = get_list(get_dict(vuln, "product_status", where), key, where)
            if not ids:
                continue
            packages = tuple(purls[p] for p in ids if isinstance(p, str) and p in purls)
            if not packages:
                continue  # products we cannot identify: never widen to "everything"
            out.append(
                VexStatement(
                    vulnerability=vuln_id,
                    status=status,
                    packages=packages,
                    justification=labels[0] if labels else (details[0] if details else None),
                    statement=details[0] if details else None,
                )
            )
    return tuple(out)


def _csaf_products(node: dict[str, Any], out: dict[str, Purl], where: str, depth: int) -> None:
    if depth > 32:
        raise ReportFormatError(f"{where}: CSAF product tree is nested too deeply")
    product = get_dict(node, "product", where)
    product_id = get_str(product, "product_id", where)
    helper = get_dict(product, "product_identification_helper", where)
    if product_id and (purl := parse_purl(get_str(helper, "purl", where) or "")):
        out[product_id] = purl
    for entry in get_list(node, "full_product_names", where):
        _csaf_products({"product": entry}, out, where, depth + 1)
    for branch in get_list(node, "branches", where):
        _csaf_products(as_dict(branch, where), out, where, depth + 1)


def _matches_package(finding: Finding, packages: tuple[Purl, ...]) -> bool:
    if not packages:
        return True
    mine = parse_purl(finding.purl) if finding.purl else None
    for pkg in packages:
        if mine is not None:
            same = pkg.type == mine.type and pkg.name == mine.name
        else:  # no purl in the report (SARIF): compare the bare package name
            same = pkg.name.rpartition("/")[2] == finding.package_name.lower()
        if same and (pkg.version is None or pkg.version == finding.installed_version):
            return True
    return False


def apply_vex(report: ScanReport, vex_docs: Iterable[VexDocument]) -> ScanReport:
    """A copy of ``report`` with matching findings marked; nothing is removed."""
    by_id: dict[str, list[tuple[VexStatement, str]]] = {}
    for doc in vex_docs:
        for st in doc.statements:
            by_id.setdefault(st.vulnerability, []).append((st, doc.source))
    if not by_id:
        return report
    findings = []
    for finding in report.findings:
        chosen: Suppression | None = finding.suppression
        for vuln_id in finding.ids:
            for st, source in by_id.get(vuln_id, ()):
                if _matches_package(finding, st.packages):
                    chosen = Suppression(st.status, st.justification, st.statement, source)
        findings.append(
            finding
            if chosen is finding.suppression
            else dataclasses.replace(finding, suppression=chosen)
        )
    return dataclasses.replace(report, findings=tuple(findings))
