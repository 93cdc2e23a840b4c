"""``trustkit config set|get|unset KEY``: the servin guide's registry settings, kept in
registries.json (edited atomically, validated before it is written)."""

from __future__ import annotations

import click

from trustkit.cli._common import echo_json, settings_from

KEYS = ["registry.default", "registry.private", "registry.mirrors", "registry.insecure"]


@click.group("config")
def config() -> None:
    """Show and change registry settings (registries.json)."""


@config.command("set")
@click.argument("key", type=click.Choice(KEYS))
@click.argument("value")
@click.pass_context
def set_cmd(ctx: click.Context, key: str, value: str) -> None:
    """Set KEY to VALUE (lists are comma-separated)."""
    from trustkit.registry.config import config_get, config_set

    settings = settings_from(ctx)
    path = config_set(settings, key, value)
    click.echo(f"{key} = {','.join(config_get(settings, key))} ({path})")


@config.command("get")
@click.argument("key", type=click.Choice(KEYS), required=False)
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Alias of --output json.")
@click.pass_context
def get_cmd(ctx: click.Context, key: str | None, output: str | None, as_json: bool) -> None:
    """Print KEY's value (every key without one)."""
    from trustkit.registry.config import config_get

    settings = settings_from(ctx)
    keys = [key] if key else KEYS
    values = {k: config_get(settings, k) for k in keys}
    if as_json or output == "json":
        echo_json(values)
        return
    for k, found in values.items():
        click.echo(f"{k} = {','.join(found)}" if key is None else ",".join(found))


@config.command("unset")
@click.argument("key", type=click.Choice(KEYS))
@click.pass_context
def unset_cmd(ctx: click.Context, key: str) -> None:
    """Remove KEY's setting (back to the default)."""
    from trustkit.registry.config import config_set

    path = config_set(settings_from(ctx), key, None)
    click.echo(f"{key} unset ({path})")
