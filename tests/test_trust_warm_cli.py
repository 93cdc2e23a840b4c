"""``trustkit trust verify IMAGE:TAG`` answered warm before click loads (trustkit.cli.trust_warm):
the same output as the command, and the command itself whenever anything differs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta

from fixtures.processes import run_probe, trustkit_env

from trustkit.collections import Expiries, sign_tag
from trustkit.config import Settings
from trustkit.refs import parse

REPO = "localhost:5000/team/app"
#: ``trustkit ARGV`` as a process, reporting on stderr whether click (and, for the warm answer,
#: whether uuid: it imports platform) was ever imported
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('CLICK=%s\\n' % ('click' in sys.modules)))\n"
    "atexit.register(lambda: sys.stderr.write('UUID=%s\\n' % ('uuid' in sys.modules)))\n"
    "from trustkit.cli import main\n"
    "sys.argv = ['trustkit', *{argv!r}]\n"
    "main()\n"
)


def _digest(tag: str) -> str:
    return "sha256:" + hashlib.sha256(tag.encode()).hexdigest()


def _sign(settings: Settings, tag: str, expiries: Expiries | None = None) -> None:
    sign_tag(settings, parse(f"{REPO}:{tag}"), digest=_digest(tag), size=1, expiries=expiries)


def _run(settings: Settings, *argv: str) -> tuple[int, str, str, bool]:
    """(exit code, stdout, stderr without the probe's line, whether click was loaded)."""
    done = run_probe(PROBE, list(argv), trustkit_env(settings))
    lines = done.stderr.splitlines()
    probe = [line for line in lines if line.startswith("CLICK=")]
    assert probe, done.stderr
    if probe[-1] == "CLICK=False":  # the warm answer: nothing it does not need either
        assert "UUID=False" in lines, done.stderr
    err = "".join(line + "\n" for line in lines if not line.startswith(("CLICK=", "UUID=")))
    return done.returncode, done.stdout, err, probe[-1] == "CLICK=True"


def test_warm_verify_prints_what_the_command_prints_without_click(settings: Settings) -> None:
    _sign(settings, "v1")
    cold = _run(settings, "trust", "verify", f"{REPO}:v1")
    assert cold == (0, _digest("v1") + "\n", "", True)  # the full path, through click
    warm = _run(settings, "trust", "verify", f"{REPO}:v1")
    assert warm == (0, _digest("v1") + "\n", "", False)


def test_anything_changed_runs_the_command(settings: Settings) -> None:
    _sign(settings, "v1")
    _run(settings, "trust", "verify", f"{REPO}:v1")
    _sign(settings, "v2")  # a new timestamp: the remembered answer no longer counts
    assert _run(settings, "trust", "verify", f"{REPO}:v1") == (0, _digest("v1") + "\n", "", True)
    code, out, err, click = _run(settings, "trust", "verify", f"{REPO}:v3")
    assert (code, out, click) == (1, "", True) and "is not signed" in err


def test_options_and_other_references_run_the_command(settings: Settings) -> None:
    _sign(settings, "v1")
    _run(settings, "trust", "verify", f"{REPO}:v1")
    code, out, _, click = _run(settings, "trust", "verify", "--json", f"{REPO}:v1")
    assert code == 0 and click and json.loads(out)["digest"] == _digest("v1")
    code, _, err, click = _run(settings, "trust", "verify", f"{REPO}@{_digest('v1')}")
    assert code == 2 and click and "not a digest" in err
    code, _, err, click = _run(settings, "--trust-dir", "/nonexistent", "trust", "verify", REPO)
    assert code != 0 and click


def test_a_warning_to_show_runs_the_command_which_shows_it_once(settings: Settings) -> None:
    _sign(settings, "v1", Expiries(timestamp=timedelta(days=1)))  # within the warning window
    cold = _run(settings, "trust", "verify", f"{REPO}:v1")
    warm = _run(settings, "trust", "verify", f"{REPO}:v1")
    for code, out, err, click in (cold, warm):
        assert (code, out, click) == (0, _digest("v1") + "\n", True)
        assert err.count("trustkit: warning: trust data of") == 1, err
        assert "expires in 23 h" in err


def test_a_closed_stdout_is_exit_1_as_through_click(settings: Settings) -> None:
    """``trustkit trust verify IMAGE | head -0``: the command's exit 1 with nothing printed,
    whether the answer comes warm or through click."""
    _sign(settings, "v1")
    env = trustkit_env(settings, content_trust=False)
    codes = []
    for _ in ("cold", "warm"):
        read_end, write_end = os.pipe()
        os.close(read_end)  # nobody reads: the first write fails with EPIPE
        try:
            done = subprocess.run(
                [sys.executable, "-m", "trustkit", "trust", "verify", f"{REPO}:v1"],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
        finally:
            os.close(write_end)
        assert done.stderr == "", done.stderr
        codes.append(done.returncode)
    assert codes == [1, 1]
