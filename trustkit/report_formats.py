"""Verdicts rendered for people and for CI systems: table, JSON, SARIF 2.1.0, JUnit XML, and
GitHub Actions annotations. Shared by ``policy eval`` and ``gate``; pure string builders.
"""

from __future__ import annotations

import hashlib
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trustkit import refs
from trustkit.attest.model import Finding
from trustkit.errors import InvalidReferenceError
from trustkit.verdict import Action, Reason, Verdict

TOOL_NAME = "trustkit"
TOOL_URI = "https://trustkit.dev"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_STYLE = {Action.ALLOW: "green", Action.AUDIT: "cyan", Action.WARN: "yellow", Action.BLOCK: "red"}
_SARIF_LEVEL = {Action.BLOCK: "error", Action.WARN: "warning"}
_GITHUB_COMMAND = {Action.BLOCK: "error", Action.WARN: "warning", Action.AUDIT: "notice"}
_RULE_HELP = {
    "severity": "A vulnerability at or above the policy's severity threshold",
    "denylist": "A vulnerability the policy denies outright",
    "allowlist": "An allowlist entry that has expired",
    "require_scan": "No usable verified scan attestation",
    "require_signed": "The tag is not signed as the policy requires",
    "trust": "Content trust refused the image",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trustkit")
    except PackageNotFoundError:
        return "0"


def _display_name(reference: str) -> str:
    try:
        return refs.parse(reference).familiar
    except InvalidReferenceError:
        return reference


# --- table ---------------------------------------------------------------------------------
def render_table(verdicts: Sequence[Verdict], *, explain: bool = False, width: int = 120) -> str:
    """A human summary; with ``explain`` every policy's every rule result as well."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    for verdict in verdicts:
        head = Text()
        head.append(_display_name(verdict.reference), style="bold")
        head.append("  ")
        head.append(verdict.action.name, style=_STYLE[verdict.action])
        if verdict.digest:
            head.append(f"  {verdict.digest}")
        head.append(f"  ({verdict.context.value})")
        console.print(head)
        if verdict.reasons:
            table = Table(show_header=True, header_style="bold", expand=False)
            for column in ("Action", "Policy", "Rule", "Reason", "Remedy"):
                table.add_column(column, overflow="fold")
            for reason in verdict.reasons:
                table.add_row(
                    Text(reason.action.name, style=_STYLE[reason.action]),
                    reason.policy or "-",
                    reason.rule,
                    reason.message,
                    reason.remedy or "",
                )
            console.print(table)
        elif not verdict.policies:
            console.print("  no policy applies to this image")
        else:
            count = len(verdict.policies)
            console.print(f"  allowed by {count} {'policy' if count == 1 else 'policies'}")
        if explain:
            for outcome in verdict.policies:
                rules = Table(
                    title=f"policy {outcome.policy}: {outcome.action.name}",
                    title_justify="left",
                    show_header=True,
                    header_style="bold",
                )
                rules.add_column("Rule")
                rules.add_column("Result")
                rules.add_column("Detail", overflow="fold")
                for rule, passed, detail in outcome.rules:
                    rules.add_row(
                        rule,
                        Text("pass" if passed else "FAIL", style="green" if passed else "red"),
                        detail,
                    )
                console.print(rules)
        console.print()
    return buffer.getvalue()


# --- JSON ----------------------------------------------------------------------------------
def render_json(verdicts: Sequence[Verdict]) -> str:
    """``{"allowed", "action", "verdicts": [Verdict.to_dict()...]}``: stable for scripts."""
    action = max((v.action for v in verdicts), default=Action.ALLOW)
    document = {
        "allowed": all(v.allowed for v in verdicts),
        "action": action.name,
        "verdicts": [v.to_dict() for v in verdicts],
    }
    return json.dumps(document, indent=2) + "\n"


# --- SARIF ---------------------------------------------------------------------------------
def _artifact_uri(reference: str) -> str:
    """An image as a relative URI reference: ':' escaped so a registry port is no scheme."""
    return quote(reference, safe="/@")


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _finding_text(finding: Finding) -> str:
    text = (
        f"{finding.vulnerability_id} ({finding.severity.name}) in {finding.package_name} "
        f"{finding.installed_version}"
    )
    if finding.fixed_versions:
        text += f", fixed in {', '.join(finding.fixed_versions)}"
    if finding.title:
        text += f": {finding.title}"
    return text


#: trivy's mapping from a severity to a CVSS-like score when no vendor score is known
_SEVERITY_SCORE = {"CRITICAL": "9.5", "HIGH": "8.0", "MEDIUM": "5.5", "LOW": "2.0"}


def _security_severity(finding: Finding) -> str:
    """GitHub code scanning ranks by ``security-severity``: the highest CVSS v3+ score the
    scanner reported, else trivy's score for the severity name."""
    scores = [
        c.score for c in finding.cvss if c.score is not None and not c.version.startswith("2")
    ]
    if scores:
        return f"{max(scores):.1f}"
    return _SEVERITY_SCORE.get(finding.severity.name, "0.0")


def _finding_remedy(finding: Finding) -> str:
    if finding.fixed_versions:
        return f"upgrade {finding.package_name} to {', '.join(finding.fixed_versions)}"
    return (
        f"no fixed version of {finding.package_name} is known: allowlist "
        f"{finding.vulnerability_id} with an expiry, or mitigate"
    )


def _advisory_uri(vulnerability_id: str) -> str | None:
    if vulnerability_id.startswith("CVE-"):
        return f"https://nvd.nist.gov/vuln/detail/{quote(vulnerability_id)}"
    if vulnerability_id.startswith("GHSA-"):
        return f"https://github.com/advisories/{quote(vulnerability_id)}"
    return None


def _finding_rule(finding: Finding) -> dict[str, Any]:
    """One SARIF rule per vulnerability, as trivy writes them: ranked, tagged, with a remedy."""
    title = finding.title or finding.vulnerability_id
    remedy = _finding_remedy(finding)
    rule: dict[str, Any] = {
        "id": finding.vulnerability_id,
        "name": "ImageVulnerability",
        "shortDescription": {"text": title},
        "fullDescription": {"text": _finding_text(finding)},
        "defaultConfiguration": {
            "level": "error" if finding.severity.name in ("CRITICAL", "HIGH") else "warning"
        },
        "help": {
            "text": f"{_finding_text(finding)}. Remedy: {remedy}",
            "markdown": (
                f"**{finding.vulnerability_id}** ({finding.severity.name}) in "
                f"`{finding.package_name}` {finding.installed_version}\n\nRemedy: {remedy}"
            ),
        },
        "properties": {
            "security-severity": _security_severity(finding),
            "precision": "very-high",
            "tags": ["vulnerability", "security", finding.severity.name],
        },
    }
    uri = _advisory_uri(finding.vulnerability_id)
    if uri is not None:
        rule["helpUri"] = uri
    return rule


def _policy_rule(rule_id: str) -> dict[str, Any]:
    name = rule_id.split("/", 1)[1]
    return {
        "id": rule_id,
        "name": name.replace("_", "-"),
        "shortDescription": {"text": _RULE_HELP.get(name, "trustkit policy rule")},
        "helpUri": f"{TOOL_URI}/docs/policy#{name}",
        "properties": {"tags": ["security", "supply-chain"]},
    }


def _sarif_rules(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    """Every rule a result refers to, in first-use order: vulnerabilities and policy rules."""
    rules: dict[str, dict[str, Any]] = {}
    for verdict in verdicts:
        for reason in verdict.reasons:
            if reason.action not in _SARIF_LEVEL:
                continue
            if reason.affected:
                for finding in reason.affected:
                    if finding.vulnerability_id not in rules:
                        rules[finding.vulnerability_id] = _finding_rule(finding)
            else:
                rule_id = f"{TOOL_NAME}/{reason.rule}"
                if rule_id not in rules:
                    rules[rule_id] = _policy_rule(rule_id)
    return list(rules.values())


def _sarif_results(verdict: Verdict, rule_index: dict[str, int]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    uri = _artifact_uri(verdict.reference)
    image = _display_name(verdict.reference)
    location = {
        "physicalLocation": {
            "artifactLocation": {"uri": uri},
            "region": {"startLine": 1},
        },
        "logicalLocations": [{"name": image, "kind": "module"}],
    }
    for reason in verdict.reasons:
        level = _SARIF_LEVEL.get(reason.action)
        if level is None:
            continue  # AUDIT only records; it is not a code-scanning result
        properties = {
            "policy": reason.policy,
            "rule": reason.rule,
            "action": reason.action.name,
            "image": image,
        }
        if reason.affected:
            occurrences: dict[tuple[str, str, str], int] = {}
            for finding in reason.affected:
                # the same package version can sit at several paths: keep fingerprints unique
                identity = (
                    finding.vulnerability_id,
                    finding.package_name,
                    finding.installed_version,
                )
                occurrence = occurrences[identity] = occurrences.get(identity, 0) + 1
                message = (
                    f"{image}: {_finding_text(finding)} [policy {reason.policy}]. "
                    f"Remedy: {_finding_remedy(finding)}"
                )
                results.append(
                    {
                        "ruleId": finding.vulnerability_id,
                        "ruleIndex": rule_index[finding.vulnerability_id],
                        "level": level,
                        "locations": [location],
                        "message": {"text": message},
                        "partialFingerprints": {
                            "trustkitFinding/v1": _fingerprint(
                                verdict.reference,
                                reason.policy or "",
                                reason.rule,
                                finding.vulnerability_id,
                                finding.package_name,
                                finding.installed_version,
                                str(occurrence),
                            )
                        },
                        "properties": {
                            **properties,
                            "vulnerability": finding.vulnerability_id,
                            "package": finding.package_name,
                            "installedVersion": finding.installed_version,
                            "severity": finding.severity.name,
                            "security-severity": _security_severity(finding),
                            "fixedVersions": list(finding.fixed_versions),
                        },
                    }
                )
        else:
            rule_id = f"{TOOL_NAME}/{reason.rule}"
            message = f"{image}: {reason.message}"
            if reason.remedy:
                message += f". Remedy: {reason.remedy}"
            results.append(
                {
                    "ruleId": rule_id,
                    "ruleIndex": rule_index[rule_id],
                    "level": level,
                    "locations": [location],
                    "message": {"text": message},
                    "partialFingerprints": {
                        "trustkitFinding/v1": _fingerprint(
                            verdict.reference, reason.policy or "", reason.rule, reason.message
                        )
                    },
                    "properties": properties,
                }
            )
    return results


def render_sarif(verdicts: Sequence[Verdict], *, errors: Sequence[tuple[str, str]] = ()) -> str:
    """SARIF 2.1.0: one ``error`` result per blocking finding (or per blocking rule that has no
    finding, such as require_signed), ``warning`` results for WARN; AUDIT is left out. As trivy
    writes it, each vulnerability is its own rule carrying ``security-severity`` and the
    ``security`` tag, so code scanning ranks Critical/High; each result names its remedy. Images
    that could not be checked (``errors``: image, message) are error notifications of an
    unsuccessful invocation, so a code-scanning UI never shows them as clean."""
    rules = _sarif_rules(verdicts)
    rule_index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = [r for v in verdicts for r in _sarif_results(v, rule_index)]
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": _version(),
                        "informationUri": TOOL_URI,
                        "rules": rules,
                    }
                },
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": not errors,
                        "toolExecutionNotifications": [
                            {
                                "level": "error",
                                "message": {"text": f"{image}: could not be checked: {error}"},
                            }
                            for image, error in errors
                        ],
                    }
                ],
                "properties": {
                    "verdicts": [
                        {"image": v.reference, "action": v.action.name, "digest": v.digest}
                        for v in verdicts
                    ]
                },
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


# --- JUnit ---------------------------------------------------------------------------------
def _reason_text(reasons: Sequence[Reason]) -> str:
    lines = []
    for reason in reasons:
        lines.append(f"[{reason.action.name}] {reason.rule}: {reason.message}")
        if reason.remedy:
            lines.append(f"    remedy: {reason.remedy}")
    return "\n".join(lines)


def render_junit(verdicts: Sequence[Verdict], *, errors: Sequence[tuple[str, str]] = ()) -> str:
    """One <testsuite> per image, one <testcase> per policy; BLOCK is a <failure>, WARN and
    AUDIT reasons go to <system-out>. Trust refusals outside any policy are a 'content-trust'
    test case; an image no policy applies to gets one passing 'verdict' test case; an image
    that could not be checked (``errors``) is a 'check' test case with an <error>."""
    suites = ET.Element("testsuites", name=TOOL_NAME)
    total = failures = 0
    for image_text, error in errors:
        image = _display_name(image_text)
        suite = ET.SubElement(suites, "testsuite", name=image, tests="1", failures="0", errors="1")
        case = ET.SubElement(suite, "testcase", name="check", classname=image)
        ET.SubElement(case, "error", message=error, type="unchecked").text = error
        total += 1
    for verdict in verdicts:
        image = _display_name(verdict.reference)
        suite = ET.SubElement(suites, "testsuite", name=image)
        cases: list[tuple[str, Action, list[Reason]]] = []
        outside = [r for r in verdict.reasons if r.policy is None]
        if outside:
            cases.append(("content-trust", max(r.action for r in outside), outside))
        for outcome in verdict.policies:
            cases.append((outcome.policy, outcome.action, list(outcome.reasons)))
        if not cases:
            cases.append(("verdict", verdict.action, []))
        suite_failures = 0
        for name, action, reasons in cases:
            case = ET.SubElement(suite, "testcase", name=name, classname=image)
            text = _reason_text(reasons)
            if action is Action.BLOCK:
                suite_failures += 1
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=reasons[0].message if reasons else f"{image} blocked",
                    type="BLOCK",
                )
                failure.text = text
            elif text:
                ET.SubElement(case, "system-out").text = text
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(suite_failures))
        suite.set("errors", "0")
        total += len(cases)
        failures += suite_failures
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(len(errors)))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


# --- GitHub Actions ------------------------------------------------------------------------
def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(verdicts: Sequence[Verdict]) -> list[str]:
    """Workflow commands (``::error title=...::message``), one per reason."""
    lines: list[str] = []
    for verdict in verdicts:
        image = _display_name(verdict.reference)
        for reason in verdict.reasons:
            command = _GITHUB_COMMAND.get(reason.action)
            if command is None:
                continue
            title = f"{image} {reason.action.name}: " + (
                f"policy {reason.policy}, rule {reason.rule}" if reason.policy else reason.rule
            )
            message = reason.message + (f" - remedy: {reason.remedy}" if reason.remedy else "")
            lines.append(f"::{command} title={_escape_property(title)}::{_escape_data(message)}")
    return lines
