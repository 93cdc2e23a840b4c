"""``trustkit scan``: attest scan reports to images and show verified results."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trustkit._fs import read_protected
from trustkit.attest.reports import FORMATS
from trustkit.attest.statement import PREDICATE_TYPES
from trustkit.cli._common import IMAGE, echo_json, services_from
from trustkit.errors import AttestationError, BadInputError, KeyStoreError
from trustkit.model.findings import Severity

if TYPE_CHECKING:  # the service pulls in the registry client and the key store: lazily
    from trustkit.attest.model import VerifiedScan
    from trustkit.keys import Key
    from trustkit.model.findings import Finding

MAX_FINDINGS_SHOWN = 200


@click.group("scan")
def scan() -> None:
    """Attest scan reports to images and show verified results."""


@scan.command("attest")
@click.argument("image", type=IMAGE)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Scanner report (Trivy JSON, Grype JSON, SARIF). Default: run $SERVIN_SCANNER.",
)
@click.option(
    "--report-format",
    "report_format",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="Format of the --report given (input).",
)
@click.option(
    "--format",
    "deprecated_format",
    type=click.Choice(["auto", *FORMATS]),
    default=None,
    hidden=True,
    help="Deprecated alias of --report-format.",
)
@click.option(
    "--vex",
    "vex_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="OpenVEX / CycloneDX VEX / CSAF document marking findings not_affected or fixed.",
)
@click.option("--key", "key_name", default=None, help="Scanner key name (default: 'scanner').")
@click.option(
    "--predicate-type",
    type=click.Choice(sorted(PREDICATE_TYPES)),
    default="cosign-vuln",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "text", "json"]),
    default=None,
    help="Output format (default table; text is the same).",
)
@click.option("--json", "as_json", is_flag=True, help="Alias of --output json.")
@click.pass_context
def attest(
    ctx: click.Context,
    image: str,
    report: Path | None,
    report_format: str,
    deprecated_format: str | None,
    vex_files: tuple[Path, ...],
    key_name: str | None,
    predicate_type: str,
    output: str | None,
    as_json: bool,
) -> None:
    """Sign a scan report of IMAGE (registry ref or oci:PATH[:TAG]) and attach it.

    A tag is resolved to its current digest; the attestation is about that digest.
    """
    if deprecated_format is not None:
        click.echo(
            "trustkit: warning: --format is deprecated (it names the report's format): "
            "use --report-format",
            err=True,
        )
        if report_format == "auto":
            report_format = deprecated_format
    output = "json" if as_json else (output or "table")
    services = services_from(ctx)
    from trustkit.attest.service import scan_and_attest
    from trustkit.cli._common import refused_as_json

    with refused_as_json(output == "json", image=image, attested=False):
        result = scan_and_attest(
            services,
            image,
            report=report,
            scanner_command=None,
            key_name=key_name,
            vex=vex_files,
            format=report_format,
            predicate_type=predicate_type,
        )
    counts = result.report.counts()
    suppressed = result.report.suppressed_count()
    if output == "json":
        echo_json(
            {
                "image": result.image,
                "digest": result.image_digest,
                "predicateType": result.predicate_type,
                "signer": result.signer_keyid,
                "attestation": result.attached.envelope_digest,
                "tag": result.attached.att_tag,
                "referrer": result.attached.referrer_digest,
                "counts": counts,
                "suppressed": suppressed,
                "warnings": list(result.warnings),
            }
        )
        return
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    click.echo(f"Attested {result.image} ({result.image_digest})")
    click.echo(
        f"  {len(result.report.findings)} findings: {summary}"
        + (f"; {suppressed} suppressed by VEX" if suppressed else "")
    )
    click.echo(
        f"  signed by scanner key {result.signer_keyid[:12]}, attached as {result.attached.att_tag}"
    )
    for warning in result.warnings:  # e.g. the report names another repository
        click.echo(f"trustkit: warning: {warning}", err=True)


def _trusted_keys(ctx: click.Context, files: tuple[Path, ...]) -> list[Key]:
    from trustkit.attest.service import default_trusted_keys
    from trustkit.keys import load_public_key

    keys = default_trusted_keys(services_from(ctx))
    for path in files:
        try:
            data = read_protected(path, 64 * 1024, what="public key")  # decides trust
        except FileNotFoundError:
            raise BadInputError(f"public key file {path} does not exist") from None
        keys.append(load_public_key(data, what=str(path)))
    if not keys:
        raise KeyStoreError(
            "no trusted scanner keys",
            hint="pass --trusted-key PUB, or generate one: trustkit trust key generate "
            "scanner --role scanner",
        )
    return keys


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "unknown"
    delta = now - moment
    if delta < timedelta(0):
        return "in the future"
    if delta < timedelta(hours=1):
        return f"{int(delta.total_seconds() // 60)} min"
    if delta < timedelta(days=2):
        return f"{int(delta.total_seconds() // 3600)} h"
    return f"{delta.days} days"


def _scan_json(scan: VerifiedScan, now: datetime) -> dict[str, Any]:
    report = scan.report
    return {
        "scanner": report.scanner.name,
        "scannerVersion": report.scanner.version,
        "dbUpdated": report.scanner.db_updated.isoformat() if report.scanner.db_updated else None,
        "scanFinishedOn": scan.scan_finished_on.isoformat(),
        # the scanner's time (DB build or report creation), what max_scan_age measures
        "scannedAt": scan.scanned_at.isoformat() if scan.scanned_at else None,
        "ageSeconds": int((now - (scan.scanned_at or scan.scan_finished_on)).total_seconds()),
        "warning": scan.extras.get("warning"),
        "signer": scan.signer_keyid,
        "predicateType": scan.predicate_type,
        "attestation": scan.attestation_digest,
        "counts": report.counts(),
        "fixable": report.fixable_counts(),
        "suppressed": report.suppressed_count(),
        "findings": [
            {
                "id": f.vulnerability_id,
                "aliases": list(f.aliases),
                "package": f.package_name,
                "installed": f.installed_version,
                "fixed": list(f.fixed_versions),
                "fixState": f.fix_state.value,
                "severity": f.severity.name,
                "purl": f.purl,
                "suppressed": f.suppressed,
                "vex": (
                    {
                        "status": f.suppression.status.value,
                        "justification": f.suppression.justification,
                    }
                    if f.suppression
                    else None
                ),
            }
            for f in report.findings
        ],
    }


@scan.command("results")
@click.argument("image", type=IMAGE)
@click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default=None, help="Default table."
)
@click.option("--json", "as_json", is_flag=True, help="Alias of --output json.")
@click.option(
    "--severity",
    "severities",
    default=None,
    metavar="LIST",
    help="Show only these severities, comma-separated (e.g. CRITICAL,HIGH), as trivy does.",
)
@click.option(
    "--trusted-key",
    "trusted_key_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Extra trusted scanner public key (PEM). Scanner keys in the key store are trusted.",
)
@click.pass_context
def results(
    ctx: click.Context,
    image: str,
    output: str | None,
    as_json: bool,
    severities: str | None,
    trusted_key_files: tuple[Path, ...],
) -> None:
    """Verify IMAGE's scan attestations and show the newest verified result."""
    output = "json" if as_json else (output or "table")
    shown = _parse_severities(severities)
    services = services_from(ctx)
    keys = _trusted_keys(ctx, trusted_key_files)
    from trustkit.attest.service import opened, resolve_subject, verified_scans

    with opened(services, image) as location:
        digest = resolve_subject(location).digest
        scans, problems = verified_scans(services, location, trusted_keys=keys)
    now = datetime.now(UTC)
    if output == "json":
        echo_json(
            {
                "image": image,
                "digest": digest,
                "verified": len(scans),
                "unverifiable": problems,
                "newest": _scan_json(scans[0], now) if scans else None,
            }
        )
    else:
        _print_table(image, digest, scans, problems, now, shown)
    if not scans:
        raise AttestationError(
            f"no verified scan attestation for {image} ({digest})"
            + (f"; {len(problems)} unverifiable" if problems else "")
        )


def _parse_severities(text: str | None) -> frozenset[Severity] | None:
    if text is None:
        return None
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in Severity.__members__]
    if unknown or not names:
        raise BadInputError(
            f"unknown severity {', '.join(unknown) or text!r}",
            hint=f"choose from {','.join(reversed(Severity.__members__))}",
        )
    return frozenset(Severity[n] for n in names)


def _console() -> Any:
    """A console that never cuts ids: a terminal's (or $COLUMNS) width, tables wrapping
    their free text; a pipe without $COLUMNS gets wide lines."""
    import os

    from rich.console import Console

    wide = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(highlight=False, width=200 if wide else None)


def _print_table(
    image: str,
    digest: str,
    scans: list[VerifiedScan],
    problems: list[str],
    now: datetime,
    shown: frozenset[Severity] | None = None,
) -> None:
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{image}[/bold] {digest}")
    console.print(f"{len(scans)} verified scan attestation(s), {len(problems)} unverifiable")
    for problem in problems:
        console.print(f"  [red]unverifiable (not used)[/red] {problem}")
    if not scans:
        return
    scan = scans[0]
    report = scan.report
    info = report.scanner
    console.print(
        f"Newest: {info.name} {info.version or ''} finished {scan.scan_finished_on.isoformat()} "
        f"({_age(scan.scan_finished_on, now)} ago), DB age {_age(info.db_updated, now)}, "
        f"signed by {scan.signer_keyid[:12]}"
    )
    if scan.extras.get("warning"):
        from rich.markup import escape

        console.print(f"  [yellow]warning[/yellow] {escape(scan.extras['warning'])}")
    counts, fixable = report.counts(), report.fixable_counts()
    summary = Table(title="Findings by severity (suppressed not counted)")
    for name in ("Severity", "Count", "Fixable"):
        summary.add_column(name, justify="right" if name != "Severity" else "left")
    for severity, count in counts.items():
        summary.add_row(severity, str(count), str(fixable[severity]))
    suppressed = report.suppressed_count()
    summary.add_row("suppressed (VEX)", str(suppressed), "")
    console.print(summary)
    findings = [f for f in report.findings if shown is None or f.severity in shown]
    ordered = sorted(findings, key=lambda f: (f.suppressed, -f.severity, f.vulnerability_id))
    listed = ordered[:MAX_FINDINGS_SHOWN]
    # what is copied (ids, package names) is never cut: those columns are as wide as their
    # longest value; versions, status and the title wrap instead. When even that does not fit
    # the terminal, one finding per block, each id and package on a line of its own
    library_width = _widest(f.package_name for f in listed)
    id_width = _widest(f.vulnerability_id for f in listed)
    if library_width + id_width + len("CRITICAL") + 4 * 3 + 4 * 6 > console.width:
        _print_records(console, listed)
    else:
        _print_findings_table(console, listed, library_width, id_width)
    if len(ordered) > MAX_FINDINGS_SHOWN:
        console.print(f"… {len(ordered) - MAX_FINDINGS_SHOWN} more (use --output json)")


def _status(f: Finding) -> str:
    status = f.fix_state.value
    if f.suppression is not None:
        tag = "suppressed" if f.suppressed else "VEX"
        status = f"{tag}: {f.suppression.status.value}"
        if f.suppression.justification:
            status += f" ({f.suppression.justification})"
    return status


def _print_records(console: Any, listed: list[Finding]) -> None:
    from rich.text import Text

    console.print("Findings")
    for f in listed:
        style = "dim" if f.suppressed else ""
        console.print(Text(f"{f.severity.name:<8} {f.vulnerability_id}", style=style))
        fixed = ", ".join(f.fixed_versions) or "-"
        console.print(Text(f"  {f.package_name}", style=style))
        console.print(
            Text(f"  installed {f.installed_version}, fixed {fixed}, {_status(f)}", style=style)
        )
        if f.title:
            console.print(Text(f"  {f.title}", style=style))


def _print_findings_table(
    console: Any, listed: list[Finding], library_width: int, id_width: int
) -> None:
    from rich.table import Table

    table = Table(title="Findings")
    table.add_column("Library", no_wrap=True, min_width=library_width)
    table.add_column("Vulnerability", no_wrap=True, min_width=id_width)
    table.add_column("Severity", no_wrap=True)
    for name in ("Status", "Installed", "Fixed", "Title"):
        table.add_column(name, overflow="fold")
    for f in listed:
        style = "dim" if f.suppressed else None
        table.add_row(
            f.package_name,
            f.vulnerability_id,
            f.severity.name,
            _status(f),
            f.installed_version,
            ", ".join(f.fixed_versions),
            f.title or "",
            style=style,
        )
    console.print(table)


def _widest(values: Any) -> int:
    return max((len(v) for v in values), default=0)
