"""Security review of the hook protocol: JSON nested past the recursion limit is bad input (exit 2,
a JSON answer), never a traceback that servin would have to interpret."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustkit.cli import cli
from trustkit.config import Settings
from trustkit.hook_server import answer_line, start_background
from trustkit.hooks import handle

DEEP = b"[" * 50_000  # under the 64 KiB request bound, far past the recursion limit


def test_nested_hook_request_is_bad_input(settings: Settings) -> None:
    code, answer = handle(settings, "pre-pull", DEEP)
    assert code == 2
    assert answer["allow"] is False
    assert "nested too deeply" in answer["error"]


def test_nested_hook_request_on_stdin_exits_2(passphrase_env: Path) -> None:
    result = CliRunner().invoke(cli, ["hook", "pre-pull"], input=DEEP)
    assert result.exit_code == 2
    assert json.loads(result.output)["allow"] is False


def test_nested_envelope_is_bad_input(settings: Settings) -> None:
    reply = answer_line(settings, DEEP + b"\n")
    assert reply["exit"] == 2
    assert reply["answer"]["allow"] is False


@pytest.mark.parametrize(
    "payload",
    [DEEP, b'{"hook": "pre-pull", "request": ' + DEEP + b"}"],
    ids=["bare", "in-envelope"],
)
def test_socket_server_answers_nested_requests(
    settings: Settings, tmp_path: Path, payload: bytes
) -> None:
    path = tmp_path / "hook.sock"
    server, thread = start_background(settings, path)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(payload + b"\n")
            reply = json.loads(sock.makefile("rb").readline())
        assert reply["exit"] == 2
        assert reply["answer"]["allow"] is False
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
