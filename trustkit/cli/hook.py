"""``trustkit hook pre-pull|post-pull|pre-push|post-push`` and ``trustkit hook serve``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from trustkit.cli._common import services_from
from trustkit.hooks import MAX_REQUEST_BYTES, STAGES


@click.group()
def hook() -> None:
    """servin hooks: one JSON request on stdin, one JSON answer on stdout.

    Exit 0 allowed, 1 refused, 2 malformed request, 3 environment error.
    """


def _make_stage(stage: str) -> click.Command:
    @click.pass_context
    def run(ctx: click.Context) -> None:
        from trustkit.hooks import handle

        payload = sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
        code, answer = handle(services_from(ctx), stage, payload)
        click.echo(json.dumps(answer))
        ctx.exit(code)

    return click.Command(
        name=stage,
        callback=run,
        help=f"Run the {stage} hook: JSON request on stdin, JSON answer on stdout.",
    )


for _stage in STAGES:
    hook.add_command(_make_stage(_stage))


@hook.command("serve")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Unix socket to listen on (created 0600).",
)
@click.pass_context
def serve_cmd(ctx: click.Context, socket_path: Path) -> None:
    """Persistent mode: answer hooks over a Unix socket, one JSON line each way."""
    from trustkit.hook_server import serve

    serve(services_from(ctx), socket_path)
