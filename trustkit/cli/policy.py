"""``trustkit policy``: create, list, show, validate, delete and evaluate image policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from trustkit._fs import atomic_write, ensure_private_dir
from trustkit.attest.model import Severity
from trustkit.cli._common import IMAGE, echo_json, services_from, settings_from
from trustkit.errors import BadInputError, PolicyFileError, StorageError
from trustkit.policy import (
    PolicyValidationError,
    check_policy_file,
    check_policy_name,
    find_policy,
    load_policy_text,
    parse_duration,
    policy_document,
    policy_files_in,
)
from trustkit.verdict import Action, Context

_SEVERITIES = [s.name for s in Severity]
_ACTIONS = ["BLOCK", "WARN", "AUDIT"]
_HEADER = "# trustkit image policy (apiVersion trustkit.dev/v1); format: docs/policy.md\n"


@click.group("policy")
def policy() -> None:
    """Create, validate and evaluate image policies (see docs/policy.md)."""


@policy.command("create")
@click.argument("name")
@click.option(
    "--severity",
    type=click.Choice(_SEVERITIES, case_sensitive=False),
    help="Block (or warn) on findings at or above this severity.",
)
@click.option(
    "--action",
    type=click.Choice(_ACTIONS, case_sensitive=False),
    default="BLOCK",
    show_default=True,
    help="What happens when a rule fails.",
)
@click.option("--scope", multiple=True, help="Image glob the policy applies to (repeatable).")
@click.option("--exclude", multiple=True, help="Image glob taken out of the scope (repeatable).")
@click.option("--ignore-unfixed", is_flag=True, help="Findings without a fix do not count.")
@click.option("--max-scan-age", help="A scan older than this counts as none (e.g. 7d, 24h).")
@click.option("--require-signed", is_flag=True, help="The tag must be signed (content trust).")
@click.option(
    "--require-scan/--no-require-scan",
    default=None,
    help="Refuse images without a verified scan (default: on for BLOCK).",
)
@click.option("--deny", multiple=True, help="Vulnerability id that always fails (repeatable).")
@click.option("--description", help="A sentence saying what the policy is for.")
@click.option(
    "--trusted-scanner",
    "trusted_scanners",
    multiple=True,
    help=(
        "Scanner key whose scan attestations count for this policy: a scanner key's name in "
        "the key store, a key id, or a PEM public key file (repeatable). Without one, the "
        "policy's scan rules fail closed."
    ),
)
@click.option("--force", is_flag=True, help="Replace an existing policy of the same name.")
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    severity: str | None,
    action: str,
    scope: tuple[str, ...],
    exclude: tuple[str, ...],
    ignore_unfixed: bool,
    max_scan_age: str | None,
    require_signed: bool,
    require_scan: bool | None,
    deny: tuple[str, ...],
    description: str | None,
    trusted_scanners: tuple[str, ...],
    force: bool,
) -> None:
    """Write a new policy NAME to the policy directory."""
    settings = settings_from(ctx)
    check_policy_name(name)
    if max_scan_age is not None:
        try:
            parse_duration(max_scan_age)
        except BadInputError as exc:
            raise BadInputError(f"--max-scan-age: {exc}") from None
    directory = settings.effective_policy_dir
    path = directory / f"{name}.yaml"
    existing = find_policy(directory, name)
    if existing is not None and not force:
        raise BadInputError(
            f"policy {name!r} already exists in {existing[0]}", hint="use --force to replace it"
        )
    document = policy_document(
        name,
        action=Action[action.upper()],
        severity=Severity[severity.upper()] if severity else None,
        scope=scope,
        exclude=exclude,
        ignore_unfixed=ignore_unfixed,
        max_scan_age=max_scan_age,
        require_signed=require_signed,
        require_scan=require_scan,
        deny=deny,
        description=description,
        trusted_scanners=[_scanner_key_reference(ctx, text) for text in trusted_scanners],
    )
    text = _HEADER + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    try:
        load_policy_text(text, source=path)  # what we write must load
    except PolicyValidationError as exc:
        raise BadInputError(
            "; ".join(p.message for p in exc.problems), hint="check the options"
        ) from None
    ensure_private_dir(directory)
    if existing is not None and existing[0] != path:
        try:
            existing[0].unlink()
        except OSError as exc:
            raise StorageError(f"cannot replace {existing[0]}: {exc.strerror}") from exc
    atomic_write(path, text.encode("utf-8"))
    click.echo(f"created policy {name} ({action.upper()}) in {path}")
    scan_rules = severity or deny or max_scan_age or require_scan
    if require_scan is None and action.upper() == "BLOCK":
        scan_rules = True
    if scan_rules and not trusted_scanners:
        click.echo(
            f"warning: policy {name} names no trusted scanner key, so no scan counts for it and "
            "its scan rules fail; add --trusted-scanner KEY",
            err=True,
        )


def _scanner_key_reference(ctx: click.Context, text: str) -> str:
    """A ``--trusted-scanner`` value as the policy file names it: a key store scanner key's
    name becomes its key id (explicit in the file); key ids and PEM paths stay as given."""
    from trustkit.attest.service import SCANNER_ROLE

    if Path(text).expanduser().is_file():
        return str(Path(text).expanduser().resolve())
    records = services_from(ctx).keys.records(role=SCANNER_ROLE, name=text)
    if records:
        return records[-1].keyid
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text
    raise BadInputError(
        f"--trusted-scanner {text!r} is neither a scanner key in the key store, a key id, "
        "nor a PEM public key file",
        hint="list scanner keys with: trustkit trust key list",
    )


@policy.command("list")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def list_(ctx: click.Context, output: str) -> None:
    """List the policies in the policy directory (exit 2 if any file is invalid)."""
    directory = settings_from(ctx).effective_policy_dir
    rows: list[dict[str, Any]] = []
    invalid = 0
    for path in policy_files_in(directory):
        found, problems = check_policy_file(path)
        if found is None:
            invalid += 1
            error = problems[0].render(str(path))
            rows.append({"name": path.stem, "file": str(path), "error": error})
        else:
            rows.append(found.summary())
    if output == "json":
        echo_json({"directory": str(directory), "policies": rows})
    elif not rows:
        click.echo(f"no policies in {directory}")
    else:
        for row in rows:
            if "error" in row:
                click.echo(f"{row['name']:<28} INVALID  {row['error']}")
                continue
            scope = ",".join(row["scope"])
            extras = [f"severity>={row['severity']}"] if row["severity"] else []
            if row["require_signed"]:
                extras.append("signed")
            if row["require_scan"]:
                extras.append("scan")
            click.echo(f"{row['name']:<28} {row['action']:<6} {scope:<30} {' '.join(extras)}")
    if invalid:
        ctx.exit(2)


@policy.command("show")
@click.argument("name")
@click.option("--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.pass_context
def show(ctx: click.Context, name: str, output: str) -> None:
    """Print policy NAME (the file as written, or its checked JSON form)."""
    directory = settings_from(ctx).effective_policy_dir
    found = find_policy(directory, check_policy_name(name))
    if found is None:
        raise BadInputError(f"no policy named {name!r} in {directory}")
    path, loaded = found
    if output == "json":
        if loaded is None:
            _, problems = check_policy_file(path)
            raise PolicyValidationError(str(path), problems)
        echo_json({"file": str(path), "policy": loaded.document})
        return
    click.echo(path.read_text("utf-8"), nl=False)


@policy.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Check policy FILES against the schema and the rules' meaning (exit 2 when invalid)."""
    invalid = False
    for path in files:
        try:
            found, problems = check_policy_file(path)
        except PolicyFileError as exc:
            click.echo(f"{path}: {exc}", err=True)
            invalid = True
            continue
        if found is None:
            invalid = True
            for problem in problems:
                click.echo(problem.render(str(path)), err=True)
        else:
            click.echo(f"{path}: valid (policy {found.name}, {found.action.name})")
    if invalid:
        ctx.exit(2)


@policy.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Remove policy NAME from the policy directory."""
    directory = settings_from(ctx).effective_policy_dir
    found = find_policy(directory, check_policy_name(name))
    if found is None:
        raise BadInputError(f"no policy named {name!r} in {directory}")
    try:
        found[0].unlink()
    except OSError as exc:
        raise StorageError(f"cannot delete {found[0]}: {exc.strerror}") from exc
    click.echo(f"deleted policy {name} ({found[0]})")


@policy.command("eval")
@click.argument("image", type=IMAGE)
@click.option(
    "--context",
    "context_name",
    type=click.Choice([c.value for c in Context]),
    default=Context.CI.value,
    show_default=True,
    help="Where the check happens (policies may apply to some contexts only).",
)
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--explain", is_flag=True, help="Show every rule's result for every policy.")
@click.option(
    "--policy",
    "policy_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also evaluate this policy file (repeatable).",
)
@click.pass_context
def eval_(
    ctx: click.Context,
    image: str,
    context_name: str,
    output: str,
    explain: bool,
    policy_files: tuple[Path, ...],
) -> None:
    """Show the verdict for IMAGE (exit 1 when a policy blocks it)."""
    from trustkit.pipeline.check import check_image
    from trustkit.report_formats import render_json, render_table

    verdict = check_image(
        services_from(ctx), image, context=Context(context_name), policy_files=list(policy_files)
    )
    if output == "json":
        click.echo(render_json([verdict]), nl=False)
    else:
        click.echo(render_table([verdict], explain=explain), nl=False)
    if not verdict.allowed:
        ctx.exit(1)
