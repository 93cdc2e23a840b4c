"""``trustkit trust migrate``: copy collections between trust stores."""

from __future__ import annotations

import click

from trustkit.cli._common import echo_json, services_from
from trustkit.refs import parse


@click.command("migrate")
@click.argument("repositories", metavar="REPO...", nargs=-1, required=True)
@click.option(
    "--from",
    "source",
    required=True,
    metavar="SOURCE",
    help="Where the trust data is now: local (the trust dir's directory), registry, a "
    "store URL (file:///path, oci://host/prefix), or a Notary v1 server (https://host:port).",
)
@click.option(
    "--to",
    "destination",
    default=None,
    metavar="DEST",
    help="Where it goes (default: the configured store, SERVIN_CONTENT_TRUST_SERVER).",
)
@click.option("--dry-run", is_flag=True, help="Verify the source and report; copy nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@click.pass_context
def migrate_cmd(
    ctx: click.Context,
    repositories: tuple[str, ...],
    source: str,
    destination: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Copy each REPO's trust data from SOURCE to DEST, verified before and after.

    The signed metadata is copied verbatim: tags, digests, signers, keys and thresholds are
    kept. Running it again changes nothing."""
    from trustkit.pipeline.migrate import migrate

    services = services_from(ctx)
    reports = [
        migrate(services, parse(repo, default_tag=False).gun, source, destination, dry_run=dry_run)
        for repo in repositories
    ]
    if as_json:
        echo_json([r.to_json() for r in reports])
        return
    for report in reports:
        not_carried = getattr(report, "not_carried", None)  # a Notary source: rebuilt
        if not_carried is not None:
            click.echo(
                f"{report.gun}: {report.action} {len(report.tags)} signed tags from "
                f"{report.source} to {report.destination}"
            )
            for what, why in sorted(not_carried.items()):
                click.echo(f"  not carried: {what}: {why}")
            continue
        click.echo(
            f"{report.gun}: {report.action} ({len(report.tags)} signed tags, "
            f"root v{report.root_version}, timestamp v{report.timestamp_version}, "
            f"{report.files} files) from {report.source} to {report.destination}"
        )
