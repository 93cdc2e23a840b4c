"""``trustkit gate IMAGE...``: verify trust and attestations, evaluate policy, CI exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from trustkit.cli._common import IMAGE, policy_option, services_from


@click.command()
@click.argument("images", nargs=-1, required=True, type=IMAGE)
@policy_option
@click.option(
    "--output",
    type=click.Choice(["table", "json", "sarif", "junit"]),
    default="table",
    show_default=True,
)
@click.option(
    "--output-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the report here instead of standard output.",
)
@click.option("--explain", is_flag=True, help="Show every rule's result (table output).")
@click.pass_context
def gate(
    ctx: click.Context,
    images: tuple[str, ...],
    policy_files: tuple[Path, ...],
    output: str,
    output_file: Path | None,
    explain: bool,
) -> None:
    """CI gate. Exit 0 all allowed, 1 blocked, 2 bad input, 3 environment error."""
    from trustkit import report_formats
    from trustkit._fs import atomic_write
    from trustkit.gate import run_gate

    services = services_from(ctx)
    settings = services.settings
    result = run_gate(services, images, policy_files=policy_files)
    verdicts = list(result.verdicts)
    if output == "json":
        text = report_formats.render_json(verdicts)
        if result.errors:  # an image that could not be checked is not silently missing
            document = json.loads(text)
            document["allowed"] = False
            document["errors"] = [{"image": i, "error": e} for i, e in result.errors]
            text = json.dumps(document, indent=2) + "\n"
    elif output == "sarif":
        text = report_formats.render_sarif(verdicts, errors=result.errors)
    elif output == "junit":
        text = report_formats.render_junit(verdicts, errors=result.errors)
    else:
        text = report_formats.render_table(verdicts, explain=explain)
    if output_file is not None:
        atomic_write(output_file, text.encode(), mode=0o644)
    elif text.strip():
        click.echo(text)
    if settings.github_actions:
        # the runner reads workflow commands from both streams; keep a report on stdout parseable
        to_stderr = output_file is None and output != "table"
        for line in report_formats.github_annotations(verdicts):
            click.echo(line, err=to_stderr)
        for image, error in result.errors:
            click.echo(f"::error title=trustkit gate::{image}: {error}", err=to_stderr)
    for image, error in result.errors:
        click.echo(f"trustkit: {image}: {error}", err=True)
    ctx.exit(result.exit_code)
