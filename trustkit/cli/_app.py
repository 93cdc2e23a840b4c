"""The ``trustkit`` click application: the top-level group, its lazily imported subcommands
and the translation of errors into one line and an exit code (``run``).

Subcommands live in their own modules and are imported only when invoked, so ``trustkit --help``
stays fast. Every ``TrustkitError`` becomes one line on stderr and its documented exit code:
0 success, 1 refused (untrusted or blocked), 2 bad input or usage, 3 environment; anything else
is a bug: one "internal error ... please report" line and exit 4.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from trustkit.errors import EXIT_INTERNAL, TrustkitError, internal_error_line

# name -> (module, attribute, one-line help). Help text is here so --help imports nothing.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "trust": ("trustkit.cli.trust", "trust", "Manage trusted collections, signers and keys."),
    "push": ("trustkit.cli.images", "push", "Copy an image to a registry, signing its tag."),
    "pull": ("trustkit.cli.images", "pull", "Fetch an image, verifying its tag's signature."),
    "login": ("trustkit.cli.login", "login", "Store credentials for a registry."),
    "logout": ("trustkit.cli.login", "logout", "Remove stored credentials for a registry."),
    "hook": ("trustkit.cli.hook", "hook", "servin push/pull hooks (JSON on stdin and stdout)."),
    "scan": ("trustkit.cli.scan", "scan", "Attest scan reports and show verified results."),
    "policy": ("trustkit.cli.policy", "policy", "Create, validate and evaluate policies."),
    "gate": ("trustkit.cli.gate", "gate", "CI gate: verify and evaluate policy for images."),
    "webhook": ("trustkit.cli.webhook", "webhook", "Kubernetes admission webhook."),
    "completion": ("trustkit.cli.completion", "completion", "Print a shell completion script."),
    "config": ("trustkit.cli.config_cmd", "config", "Show and change registry settings."),
    "tag": ("trustkit.cli.tag", "tag", "Name a local image (the local image store)."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in _COMMANDS:
            return found
        module_name, attr, _ = _COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # command not built yet in this version
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in sorted(_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--trust-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Trust directory (default $SERVIN_TRUST_DIR or ~/.servin/trust).",
)
@click.version_option(package_name="trustkit", prog_name="trustkit")
@click.pass_context
def cli(ctx: click.Context, trust_dir: Path | None) -> None:
    """trustkit: content trust, scan attestations and policy for servin images."""
    from trustkit.config import Settings
    from trustkit.services import Services

    # the composition root: one Services per invocation, handed to every operation
    services = Services(Settings.from_env(trust_dir=trust_dir))
    ctx.obj = services
    ctx.call_on_close(services.close)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """trustkit's own warnings (trust data about to expire...) as one line on stderr."""
    if category.__module__.startswith("trustkit."):
        click.echo(f"trustkit: warning: {' '.join(str(message).split())}", err=True)
        return
    _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def run(argv: list[str] | None) -> None:
    """Run the CLI; always ends in ``SystemExit`` with the documented exit code."""
    warnings.showwarning = _show_warning
    try:
        _run(argv)
    finally:
        warnings.showwarning = _default_show_warning


def _run(argv: list[str] | None) -> None:
    try:
        rv: Any = cli.main(args=argv, prog_name="trustkit", standalone_mode=False)
    except TrustkitError as exc:
        click.echo(f"trustkit: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("trustkit: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("trustkit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # last resort: a bug is one line and exit 4, never 1 ("refused")
        cause = exc.__cause__
        if isinstance(cause, TrustkitError):  # ours, wrapped by a library (python-tuf's sign)
            click.echo(f"trustkit: {cause.one_line()}", err=True)
            sys.exit(cause.exit_code)
        click.echo(f"trustkit: {internal_error_line(exc)}", err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(rv if isinstance(rv, int) else 0)
