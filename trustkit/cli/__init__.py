"""The ``trustkit`` command line: dispatch only.

``main`` is the console entry point. The click application (``trustkit.cli._app``: the group,
its lazily imported subcommands, errors as one line and an exit code) is imported by ``main``,
so that work a command will wait for can start first (``_start_ahead``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustkit.cli._app import cli as cli


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn library errors into one line and an exit code.

    Run for the process's own command line (``argv`` None), the process ends without the
    interpreter's teardown (``_exit_process``); called with arguments (tests, embedding), it
    raises ``SystemExit`` as ``sys.exit`` does."""
    if argv is None:
        _start_ahead(sys.argv[1:])
        from trustkit.cli.trust_warm import warm_verify_output

        answered = warm_verify_output(sys.argv[1:])  # a warm trust verify needs no click
        if answered is not None:
            done = SystemExit(_print(answered))
            _exit_process(done)
            raise done
    from trustkit.cli._app import run

    try:
        run(argv)
    except SystemExit as exc:
        if argv is None:
            _exit_process(exc)
        raise


def _start_ahead(args: list[str]) -> None:
    """``trust sign``'s one key derivation (600,000 PBKDF2 rounds, ADR 0012) starts here, on
    the other core, before click and the command's modules load: where the machine is busy
    the derivation, not the loading, is what a signing process waits for. Only a hint: the
    command line is parsed for real later, and the key store derives the key itself when
    nothing usable was started (another trust directory, a bad environment)."""
    if args[:2] != ["trust", "sign"]:
        return
    from trustkit.config import Settings
    from trustkit.errors import TrustkitError
    from trustkit.keys.wrap import unlock_ahead

    try:
        settings = Settings.from_env()
    except TrustkitError:
        return  # reported properly once the command line is parsed
    unlock_ahead(settings.private_dir, settings.repository_passphrase)


def _print(text: str) -> int:
    """Write ``text`` to stdout: exit code 0, or 1 when stdout is a closed pipe (nothing more is
    printed), as click answers a ``BrokenPipeError``."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        import os

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - what is left unflushed goes nowhere
        return 1
    return 0


def _exit_process(exc: SystemExit) -> None:
    """End the process as ``exc`` would, skipping the interpreter's teardown: freeing every
    module and object costs 15-25 ms, a sixth of a short command. Exit handlers run and output
    is flushed first; while another non-daemon thread runs, or when the code is not a number,
    or flushing fails (a closed pipe), the ordinary exit takes over and reports as usual."""
    import atexit
    import os
    import threading

    code = 0 if exc.code is None else exc.code
    if not isinstance(code, int) or any(
        thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
        for thread in threading.enumerate()
    ):
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code & 0xFF)


def __getattr__(name: str) -> Any:
    """``trustkit.cli.cli`` (the click group), imported on first use."""
    if name == "cli":
        from trustkit.cli import _app

        return _app.cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
