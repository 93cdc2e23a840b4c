"""``trustkit login`` / ``trustkit logout``: registry credentials in config.json (0600)."""

from __future__ import annotations

import sys

import click

from trustkit.cli._common import (
    echo_json,
    output_options,
    refused_as_json,
    services_from,
    settings_from,
    wants_json,
)
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


def _prompt(label: str, *, hide_input: bool) -> str:
    """A prompt where end of input (Ctrl-D) is one line and exit 2, not a traceback or 130."""
    try:
        value = click.prompt(label, hide_input=hide_input, err=True)
    except (click.exceptions.Abort, EOFError):
        raise BadInputError(f"no {label.lower()} given (end of input)") from None
    return str(value)


@click.command()
@click.option("-u", "--username", default=None, help="User name (prompted when omitted).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--credential-helper",
    "helper",
    default=None,
    metavar="NAME",
    help="Store the credentials with docker-credential-NAME (recorded in credHelpers).",
)
@click.option(
    "--password-store",
    type=click.Choice(["pass"]),
    default=None,
    help="Store the credentials in pass (docker-credential-pass).",
)
@click.argument("registry")
@output_options
@click.pass_context
def login(
    ctx: click.Context,
    username: str | None,
    password_stdin: bool,
    helper: str | None,
    password_store: str | None,
    registry: str,
    output: str | None,
) -> None:
    """Check credentials against REGISTRY's /v2/ and store them in config.json, or with a
    credential helper (``--credential-helper NAME``, ``--password-store pass``)."""
    as_json = wants_json(ctx, output)
    with refused_as_json(as_json, registry=registry, logged_in=False):
        doc = _login(ctx, username, password_stdin, helper, password_store, registry, as_json)
    if as_json:
        echo_json(doc)


def _login(
    ctx: click.Context,
    username: str | None,
    password_stdin: bool,
    helper: str | None,
    password_store: str | None,
    registry: str,
    as_json: bool,
) -> dict[str, object]:
    """Log in; the plain-text outcome unless ``as_json``; returns the JSON one."""
    from trustkit.registry.credentials import (
        Credentials,
        normalise_registry,
        store_credentials,
        stored_unencrypted,
    )

    settings = settings_from(ctx)
    host = normalise_registry(registry)
    if helper and password_store:
        raise BadInputError("give --credential-helper or --password-store, not both")
    helper = helper or password_store  # "pass" is docker-credential-pass
    if password_stdin:
        if not username:
            raise BadInputError("--password-stdin needs --username")
        password = _read_password_stdin()
    else:
        if not sys.stdin.isatty():
            # getpass would fall back to echoing (GetPassWarning) or die on EOF: say it instead
            raise BadInputError(
                "cannot prompt for a password: standard input is not a terminal",
                hint=f"pipe it: ... | trustkit login --username NAME --password-stdin {registry}",
            )
        username = username or _prompt("Username", hide_input=False)
        password = _prompt("Password", hide_input=True)
    creds = Credentials(str(username), password)
    # the invocation's pooled client for the host: registries.json (TLS, mirrors) parsed once
    client = services_from(ctx).registries.client(host)
    client.set_credentials(creds)
    client.ping()
    path = store_credentials(settings, host, creds, helper=helper)
    unencrypted = stored_unencrypted(settings, host)
    if unencrypted:
        click.echo(
            f"WARNING! Your password is stored unencrypted in {path}. Configure a credential "
            "helper to remove this warning (trustkit login --credential-helper NAME; see "
            "https://docs.docker.com/go/credential-store/)",
            err=True,
        )
    if not as_json:
        click.echo(f"Login Succeeded ({host}; credentials stored in {path})")
    return {
        "registry": host,
        "logged_in": True,
        "username": creds.username,
        "config_file": str(path),
        "stored_unencrypted": unencrypted,
    }


@click.command()
@click.argument("registry")
@output_options
@click.pass_context
def logout(ctx: click.Context, registry: str, output: str | None) -> None:
    """Remove the stored credentials of REGISTRY."""
    from trustkit.registry.credentials import erase_credentials, normalise_registry

    as_json = wants_json(ctx, output)
    with refused_as_json(as_json, registry=registry, removed=False):
        host = normalise_registry(registry)
        removed = erase_credentials(settings_from(ctx), host)
    if as_json:
        echo_json({"registry": host, "removed": removed})
    elif removed:
        click.echo(f"Removed login credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")
