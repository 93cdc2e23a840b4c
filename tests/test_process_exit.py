"""A trustkit process ends without the interpreter's teardown, keeping everything an exit must
do: its exit code, its flushed output, exit handlers, and waiting for non-daemon threads."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from fixtures.processes import run_probe, trustkit_env

from trustkit.cli import main
from trustkit.collections import sign_tag
from trustkit.config import Settings
from trustkit.refs import parse

REPO = "localhost:5000/team/app"
#: a process running ``trustkit ARGV`` with probes: an object freed only by the interpreter's
#: teardown, an exit handler, and (with THREAD set) a non-daemon thread still running at exit
PROBE = (
    "import atexit, os, sys, threading, time\n"
    "class Probe:\n"
    "    def __del__(self):\n"
    "        sys.stderr.write('TORN DOWN\\n')\n"
    "probe = Probe()\n"
    "atexit.register(lambda: sys.stderr.write('EXIT HANDLER\\n'))\n"
    "if os.environ.get('THREAD'):\n"
    "    def late():\n"
    "        time.sleep(0.3)\n"
    "        sys.stderr.write('THREAD DONE\\n')\n"
    "    threading.Thread(target=late).start()\n"
    "from trustkit.cli import main\n"
    "sys.argv = ['trustkit', *{argv!r}]\n"
    "main()\n"
)


def _run(settings: Settings, argv: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    # pipes: output is block-buffered and must be flushed
    return run_probe(PROBE, argv, trustkit_env(settings, **extra))


@pytest.fixture
def signed(settings: Settings) -> str:
    digest = "sha256:" + hashlib.sha256(b"v1").hexdigest()
    sign_tag(settings, parse(f"{REPO}:v1"), digest=digest, size=1)
    return digest


def test_success_skips_teardown_but_flushes_and_runs_exit_handlers(
    settings: Settings, signed: str
) -> None:
    done = _run(settings, ["trust", "verify", f"{REPO}:v1"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == signed + "\n"
    assert "EXIT HANDLER" in done.stderr
    assert "TORN DOWN" not in done.stderr  # the interpreter's teardown was skipped


def test_refusal_keeps_its_exit_code_and_message(settings: Settings, signed: str) -> None:
    done = _run(settings, ["trust", "verify", f"{REPO}:unsigned"])
    assert done.returncode == 1
    assert "is not signed" in done.stderr
    assert "TORN DOWN" not in done.stderr
    usage = _run(settings, ["trust", "verify", "--no-such-option"])
    assert usage.returncode == 2 and "No such option" in usage.stderr


def test_a_running_non_daemon_thread_gets_the_ordinary_exit(
    settings: Settings, signed: str
) -> None:
    done = _run(settings, ["trust", "verify", f"{REPO}:v1"], THREAD="1")
    assert done.returncode == 0 and done.stdout == signed + "\n"
    assert "THREAD DONE" in done.stderr  # waited for, as Python's own exit does
    assert "TORN DOWN" in done.stderr


def test_main_with_arguments_raises_system_exit(
    settings: Settings, signed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests and embedders call main(argv): the process is theirs, it is never ended."""
    for name, value in trustkit_env(settings).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(["trust", "verify", f"{REPO}:v1"])
    assert exited.value.code == 0
