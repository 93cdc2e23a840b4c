"""``trustkit trust pending`` and ``trust approve``: co-signing a role whose threshold needs
several signers (each on their own machine). The engine is ``trustkit.collections.cosigning``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from trustkit.cli._common import IMAGE, echo_json, services_from
from trustkit.refs import parse_repository

if TYPE_CHECKING:
    from trustkit.collections.cosigning import PendingView, TagChange


@click.command("pending")
@click.argument("repository", metavar="REPO", type=IMAGE)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.option("--discard", "discard_id", metavar="ID", default=None, help="Drop pending change ID.")
@click.pass_context
def pending(ctx: click.Context, repository: str, as_json: bool, discard_id: str | None) -> None:
    """List REPO's changes waiting for more signatures (or drop one with --discard)."""
    from trustkit.collections.cosigning import discard, list_pending

    ref = parse_repository(repository)
    services = services_from(ctx)
    if discard_id is not None:
        discard(services, ref.gun, discard_id)
        click.echo(f"Discarded pending change {discard_id} of {ref.repository}")
        return
    views = list_pending(services, ref.gun)
    if as_json:
        echo_json([v.to_json() for v in views])
        return
    if not views:
        click.echo(f"No pending changes for {ref.repository}")
        return
    _print_table(ref.repository, views)


@click.command("approve")
@click.argument("repository", metavar="REPO", type=IMAGE)
@click.argument("pending_id", metavar="ID")
@click.pass_context
def approve(ctx: click.Context, repository: str, pending_id: str) -> None:
    """Check pending change ID of REPO, add your signatures, and publish it once every
    threshold is met."""
    from trustkit.collections.cosigning import approve as approve_change
    from trustkit.collections.cosigning import show_pending

    ref = parse_repository(repository)
    services = services_from(ctx)
    shown = show_pending(services, ref.gun, pending_id)  # refuses stale or altered changes
    who = ", ".join(shown.proposer) or "unknown"
    click.echo(
        f"Pending change {pending_id} of {ref.repository} (proposed by {who}, "
        f"{_age(shown.created)} ago):",
        err=True,
    )
    for change in shown.changes:
        click.echo(f"  {_describe(change)}", err=True)
    result = approve_change(services, ref.gun, pending_id)
    status = _signatures(result.view)
    if result.published:
        click.echo(f"Published pending change {pending_id} of {ref.repository} ({status})")
    elif result.needs_publisher:
        click.echo(
            f"Pending change {pending_id} of {ref.repository} has every required signature "
            f"({status}); publishing needs the snapshot and timestamp keys, which are not in "
            f"this key store: run `trustkit trust approve {ref.repository} {pending_id}` "
            "where they are"
        )
    else:
        click.echo(f"Signed pending change {pending_id} of {ref.repository} ({status})")
        click.echo(_needs_more(ref.repository, result.view))


def report_pending(repository: str, view: PendingView) -> None:
    """What ``trust sign``/``trust revoke`` print when their change awaits co-signers."""
    for role in view.shortfall():
        click.echo(
            f"Signed {role.signatures} of {role.threshold} required signatures for {role.role} "
            f"of {repository}; pending change {view.id}"
        )
    click.echo(_needs_more(repository, view))


def _needs_more(repository: str, view: PendingView) -> str:
    roles = ", ".join(r.role.split("/", 1)[-1] for r in view.shortfall())
    return f"Another {roles} signer must run: trustkit trust approve {repository} {view.id}"


def _signatures(view: PendingView) -> str:
    return "; ".join(
        f"{r.role} {r.signatures}/{r.threshold}"
        + (f": {', '.join(r.signers)}" if r.signers else "")
        for r in view.roles
    )


def _describe(change: TagChange) -> str:
    if change.kind == "remove":
        return f"revoke {change.tag} (was {change.before})"
    if change.kind == "change":
        return f"move {change.tag} {change.before} -> {change.after} (size {change.size})"
    return f"sign {change.tag} {change.after} (size {change.size})"


def _age(created: datetime | None) -> str:
    if created is None:
        return "?"
    seconds = max(0, int((datetime.now(UTC) - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _print_table(repository: str, views: list[PendingView]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 250  # never truncate ids or digests in pipes and logs
    table = Table(title=f"Pending changes for {repository}", box=None, title_justify="left")
    for column in ("ID", "CHANGES", "SIGNATURES", "PROPOSER", "AGE", "STATUS"):
        table.add_column(column, no_wrap=column not in ("CHANGES", "STATUS"))
    for view in views:
        if view.problem is not None:
            status = f"refused: {view.problem}"
        else:
            status = "ready to publish" if view.ready else "waiting"
        table.add_row(
            view.id,
            "\n".join(_short(c) for c in view.changes),
            "\n".join(f"{r.role} {r.signatures}/{r.threshold}" for r in view.roles),
            ", ".join(view.proposer),
            _age(view.created),
            status,
        )
    console.print(table)


def _short(change: TagChange) -> str:
    sign = {"add": "+", "remove": "-", "change": "~"}[change.kind]
    digest = change.after or change.before or ""
    return f"{sign}{change.tag} {digest}"
