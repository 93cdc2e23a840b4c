"""``trustkit completion bash|zsh|fish`` prints a script that calls trustkit back; the answers
come from the real command tree, lazily imported subcommands included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from trustkit.cli import cli


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    done = CliRunner().invoke(cli, ["completion", shell])
    assert done.exit_code == 0, done.output
    assert "_TRUSTKIT_COMPLETE" in done.output and f"{shell}_complete" in done.output


def _complete(words: str) -> list[str]:
    env = {
        **os.environ,
        "_TRUSTKIT_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    done = subprocess.run(
        [sys.executable, "-m", "trustkit"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


def test_bash_completes_commands_and_subcommands() -> None:
    assert _complete("trustkit pu") == ["pull", "push"]
    assert "verify" in _complete("trustkit trust ve")
    assert _complete("trustkit completion z") == ["zsh"]
