"""Helpers shared by the CLI modules: the invocation's Services, JSON output, common options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from trustkit.config import Settings
from trustkit.errors import TrustkitError
from trustkit.services import Services
from trustkit.verdict import Verdict


def services_from(ctx: click.Context) -> Services:
    """The one ``Services`` of this invocation (the composition root: the root group builds it
    from the environment and --trust-dir; it is closed when the command ends)."""
    root = ctx.find_root()
    obj = root.obj
    if isinstance(obj, Services):
        return obj
    services = Services(obj if isinstance(obj, Settings) else Settings.from_env())
    root.obj = services
    root.call_on_close(services.close)
    return services


def settings_from(ctx: click.Context) -> Settings:
    """The Settings the root group built from the environment and --trust-dir."""
    return services_from(ctx).settings


def echo_json(data: Any, *, pretty: bool = True) -> None:
    click.echo(json.dumps(data, indent=2 if pretty else None, sort_keys=False))


def content_trust_option(func: Any) -> Any:
    """``--disable-content-trust``: per-command override of SERVIN_CONTENT_TRUST=1."""
    return click.option(
        "--disable-content-trust",
        is_flag=True,
        default=False,
        help="Skip signing/verification for this command even if SERVIN_CONTENT_TRUST=1.",
    )(func)


#: ``--policy FILE`` (repeatable), for the commands that run the pipeline (push, pull, gate)
policy_option = click.option(
    "--policy",
    "policy_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Policy file to apply (repeatable), in addition to the policy directory.",
)


class ImageReference(click.ParamType):  # type: ignore[type-arg]
    """An image reference as the user typed it, with a short name ("alpine", "team/app")
    qualified by the registries configuration (``unqualified_search_registries`` and
    ``short_name_mode``); an ambiguous one is refused with exit 2. ``oci:`` locations pass."""

    name = "image"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str) or value.startswith("oci:"):
            return value
        from trustkit.registry.shortnames import qualify_for

        if ctx is None:
            return qualify_for(Settings.from_env(), value)
        return qualify_for(services_from(ctx).registries, value)


IMAGE = ImageReference()


def output_options(func: Any) -> Any:
    """``--output/-o table|json`` and ``--json`` (its alias): the command gets ``as_json``."""

    def pick_json(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value:
            ctx.meta["trustkit.output"] = "json"
        return value

    func = click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=pick_json,
        help="Print the result as JSON (alias of --output json).",
    )(func)
    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(["table", "json"]),
        default=None,
        help="Output format (default table).",
    )(func)


def wants_json(ctx: click.Context, output: str | None) -> bool:
    """Whether this invocation prints JSON: ``--output json`` or ``--json``."""
    return output == "json" or ctx.meta.get("trustkit.output") == "json"


def refusal_document(exc: TrustkitError, **fields: Any) -> dict[str, Any]:
    """A command's JSON verdict when it refuses: what it was asked, why, and the exit code, so
    scripts reading stdout see the refusal as well as the exit status."""
    from trustkit.errors import PolicyRefusal

    error: dict[str, Any] = {"message": str(exc), "exitCode": exc.exit_code}
    if exc.hint:
        error["hint"] = exc.hint
    kind = getattr(exc, "kind", None)
    if kind is not None:
        error["kind"] = str(kind.value)
    out: dict[str, Any] = {**fields, "refused": True, "error": error}
    verdict = exc.verdict if isinstance(exc, PolicyRefusal) else None
    if isinstance(verdict, Verdict):
        out["verdict"] = verdict.to_dict()
        if verdict.evidence is not None and verdict.evidence.failure is not None:
            error["kind"] = str(verdict.evidence.failure.value)  # why trust said no
    return out
