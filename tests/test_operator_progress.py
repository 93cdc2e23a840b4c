"""Progress (issue 15): per-layer bars on a terminal (a real pseudo-terminal here), one line per
layer on a pipe, nothing with --quiet, and never on stdout: with --json stdout is the JSON only."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Callable

import pytest
from fixtures.registry import BuiltImage, Registry

from trustkit.config import Settings

pytestmark = pytest.mark.registry


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "SERVIN_TRUST_DIR": str(settings.trust_dir),
        "SERVIN_CONFIG": str(settings.effective_config_dir),
        "COLUMNS": "100",
        "TERM": "xterm",
    }


def _run_with_tty_stderr(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """stderr on a pseudo-terminal, stdout on a pipe: what a user piping JSON sees."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustkit", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    code = proc.wait(timeout=120)
    os.close(master)
    return code, out, b"".join(chunks).decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_never_on_stdout(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
) -> None:
    image = oci_image()
    ref = registry.ref(repo_name, "v1")
    code, out, tty = _run_with_tty_stderr(
        ["push", "--disable-content-trust", "--json", image.oci, ref], _env(settings)
    )
    assert code == 0, tty
    assert json.loads(out)["digest"] == image.digest  # stdout: the JSON and nothing else
    layer = image.blobs[0].removeprefix("sha256:")[:12]
    assert f"{layer}: Pushed" in tty
    assert "━" in tty  # rich's bar

    code, out, tty = _run_with_tty_stderr(
        ["pull", "--disable-content-trust", "--no-store", "--quiet", ref], _env(settings)
    )
    assert code == 0, tty
    assert image.digest in out and "━" not in tty and "Pulled" not in tty


def test_one_line_per_layer_on_a_pipe(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
) -> None:
    image = oci_image()
    ref = registry.ref(repo_name, "v1")
    done = subprocess.run(
        [sys.executable, "-m", "trustkit", "push", "--disable-content-trust", image.oci, ref],
        capture_output=True,
        text=True,
        env=_env(settings),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert all(any(line.startswith(f"{b}: ") for line in lines) for b in image.blobs)
    assert "━" not in done.stderr and all(b not in done.stdout for b in image.blobs[1:])
