"""Helpers shared by the CLI modules: the invocation's Services, JSON output, common options."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from trustkit.config import Settings
from trustkit.errors import TrustkitError
from trustkit.services import Services


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
        from trustkit.registry.shortnames import is_short_name, qualify_for

        if not is_short_name(value):
            return value  # qualified: the registries configuration is not read
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
    from trustkit.verdict import Verdict

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


@contextlib.contextmanager
def refused_as_json(as_json: bool, **fields: Any) -> Iterator[dict[str, Any]]:
    """Around a command's work: a refusal (``TrustkitError``) is also printed on stdout as its
    JSON document when JSON is wanted, with ``fields`` as they are when it happens (the block
    may update the yielded dict: what was done before the refusal), then raised again for the
    one-line error and the exit code."""
    try:
        yield fields
    except TrustkitError as exc:
        if as_json:
            echo_json(refusal_document(exc, **fields))
        raise


def quiet_option(func: Any) -> Any:
    return click.option(
        "--quiet", "-q", is_flag=True, help="No progress on stderr (errors are still shown)."
    )(func)


@contextlib.contextmanager
def transfer_progress(verb: str, *, quiet: bool, as_json: bool = False) -> Iterator[None]:
    """Per-layer progress on stderr while blobs move, never on stdout (JSON stays clean): rich
    bars on a terminal, one line per finished layer otherwise (not with JSON output, whose
    readers are scripts); nothing with ``quiet``."""
    import sys

    if quiet or (as_json and not sys.stderr.isatty()):
        yield
        return
    from trustkit.registry.copy import TRANSFER_LISTENER
    from trustkit.registry.model import Descriptor

    done_words = {"copied": f"{verb}ed", "skipped": "Already exists", "mounted": "Mounted"}
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        tasks: dict[str, Any] = {}

        def on_tty(event: str, desc: Descriptor) -> None:
            short = desc.digest.removeprefix("sha256:")[:12]
            if event == "start":
                tasks[desc.digest] = progress.add_task(f"{short}: {verb}ing", total=desc.size)
                return
            task = tasks.get(desc.digest)
            if task is not None:
                progress.update(
                    task, completed=desc.size, description=f"{short}: {done_words[event]}"
                )

        token = TRANSFER_LISTENER.set(on_tty)
        try:
            with progress:
                yield
        finally:
            TRANSFER_LISTENER.reset(token)
        return

    def on_pipe(event: str, desc: Descriptor) -> None:
        if event != "start":
            click.echo(f"{desc.digest}: {done_words[event]} ({desc.size} bytes)", err=True)

    token = TRANSFER_LISTENER.set(on_pipe)
    try:
        yield
    finally:
        TRANSFER_LISTENER.reset(token)
