"""``trustkit completion bash|zsh|fish``: the shell completion script, as docker prints it.

Completion itself is click's: the script calls ``trustkit`` back with ``_TRUSTKIT_COMPLETE`` set,
and the command tree (lazily imported subcommands included) answers."""

from __future__ import annotations

import click

COMPLETE_VAR = "_TRUSTKIT_COMPLETE"


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  trustkit completion bash > /etc/bash_completion.d/trustkit
    zsh:   trustkit completion zsh > "${fpath[1]}/_trustkit"
    fish:  trustkit completion fish > ~/.config/fish/completions/trustkit.fish
    """
    from click.shell_completion import get_completion_class

    from trustkit.cli import cli

    kind = get_completion_class(shell)
    assert kind is not None  # click ships bash, zsh and fish
    click.echo(kind(cli, {}, "trustkit", COMPLETE_VAR).source())
