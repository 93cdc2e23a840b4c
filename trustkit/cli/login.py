"""``trustkit login`` / ``trustkit logout``: registry credentials in config.json (0600)."""

from __future__ import annotations

import sys

import click

from trustkit.cli._common import services_from, settings_from
from trustkit.errors import BadInputError, InputTooLargeError

MAX_PASSWORD = 4096


def _read_password_stdin() -> str:
    data = sys.stdin.read(MAX_PASSWORD + 1)
    if len(data) > MAX_PASSWORD:
        raise InputTooLargeError(f"password on stdin is longer than {MAX_PASSWORD} characters")
    password = data.rstrip("\r\n")
    if not password:
        raise BadInputError("no password on stdin", hint="pipe the password: ... | trustkit login")
    return password


@click.command()
@click.option("-u", "--username", default=None, help="User name (prompted when omitted).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.argument("registry")
@click.pass_context
def login(ctx: click.Context, username: str | None, password_stdin: bool, registry: str) -> None:
    """Check credentials against REGISTRY's /v2/ and store them in config.json."""
    from trustkit.registry.credentials import Credentials, normalise_registry, store_credentials

    settings = settings_from(ctx)
    host = normalise_registry(registry)
    if password_stdin:
        if not username:
            raise BadInputError("--password-stdin needs --username")
        password = _read_password_stdin()
    else:
        username = username or click.prompt("Username")
        password = click.prompt("Password", hide_input=True)
    creds = Credentials(str(username), password)
    # the invocation's pooled client for the host: registries.json (TLS, mirrors) parsed once
    client = services_from(ctx).registries.client(host)
    client.set_credentials(creds)
    client.ping()
    path = store_credentials(settings, host, creds)
    click.echo(f"Login Succeeded ({host}; credentials stored in {path})")


@click.command()
@click.argument("registry")
@click.pass_context
def logout(ctx: click.Context, registry: str) -> None:
    """Remove the stored credentials of REGISTRY."""
    from trustkit.registry.credentials import erase_credentials, normalise_registry

    host = normalise_registry(registry)
    if erase_credentials(settings_from(ctx), host):
        click.echo(f"Removed login credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")
