"""The error tree and the last-resort handlers: a bug in any entry point is one line asking for a
report and exit 4 (never 1, which means "refused"); the hook still answers JSON and the webhook
still answers the AdmissionReview (a denial)."""

from __future__ import annotations

import inspect
import io
import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.webhook import WebhookServerFactory

import trustkit
from trustkit import errors, hook_server, hooks
from trustkit.config import Settings
from trustkit.errors import EXIT_INTERNAL, EXIT_REFUSED, TrustkitError
from trustkit.pipeline import check, flows
from trustkit.verdict import Context, Verdict
from trustkit.webhook import WebhookConfig
from trustkit.webhook.checker import ImageChecker, PipelineChecker
from trustkit.webhook.decide import Decider

IMAGE = "registry.example:5000/team/app:v1"
BUG = "forced bug for the test"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SERVIN_TRUST_DIR", str(tmp_path / "trust"))
    monkeypatch.delenv("SERVIN_CONTENT_TRUST", raising=False)
    return Settings.from_env()


@pytest.fixture
def buggy_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's decision raises an exception that is not ours: a bug."""

    def broken(*args: Any, **kwargs: Any) -> Verdict:
        raise RuntimeError(BUG)

    monkeypatch.setattr(check, "check_image", broken)
    monkeypatch.setattr(flows, "check_image", broken)  # the pull flow holds its own name


def _assert_internal_line(text: str) -> None:
    assert text.count("\n") == 0, text
    assert f"internal error: RuntimeError: {BUG}" in text
    assert f"please report this at {errors.REPORT_BUGS_AT}" in text


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from trustkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out.out, out.err


@pytest.mark.parametrize(
    "argv",
    [
        ["pull", IMAGE],
        ["gate", IMAGE],
        ["policy", "eval", IMAGE],
    ],
    ids=["pull", "gate", "policy-eval"],
)
def test_a_bug_in_a_cli_command_is_one_line_and_exit_4(
    settings: Settings,
    buggy_pipeline: None,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    code, out, err = _run_cli(argv, capsys)
    assert code == EXIT_INTERNAL and code != EXIT_REFUSED
    assert out == ""
    assert err.startswith("trustkit: internal error: ")
    _assert_internal_line(err.rstrip("\n"))


def test_a_bug_in_the_hook_executable_still_answers_json(
    settings: Settings,
    buggy_pipeline: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = json.dumps({"operation": "pull", "reference": IMAGE}).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(request)))
    code, out, _ = _run_cli(["hook", "pre-pull"], capsys)
    assert code == EXIT_INTERNAL
    lines = out.splitlines()
    assert len(lines) == 1
    answer = json.loads(lines[0])
    assert answer["allow"] is False  # servin fails closed on a bug, too
    _assert_internal_line(answer["error"])


def test_a_bug_in_an_in_process_hook_refuses_in_the_protocol_shape(
    settings: Settings, buggy_pipeline: None
) -> None:
    payload = json.dumps({"operation": "pull", "reference": IMAGE}).encode()
    for stage in ("pre-pull", "post-pull"):
        body = dict(json.loads(payload), digest="sha256:" + "1" * 64)
        code, answer = hooks.handle(settings, stage, json.dumps(body).encode())
        assert code == EXIT_INTERNAL
        assert answer["allow"] is False
        _assert_internal_line(answer["error"])


def test_a_bug_in_the_hook_server_answers_one_json_line(
    settings: Settings, buggy_pipeline: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hooks.sock"
    server, thread = hook_server.start_background(settings, path)
    try:
        # a pipeline bug, then a bug in the server's own request handling
        envelope = {"hook": "pre-pull", "request": {"operation": "pull", "reference": IMAGE}}
        first = _ask(path, envelope)
        assert first["exit"] == EXIT_INTERNAL and first["answer"]["allow"] is False
        _assert_internal_line(first["answer"]["error"])

        def broken_handle(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(BUG)

        monkeypatch.setattr(hook_server, "handle", broken_handle)
        second = _ask(path, envelope)
        assert second["exit"] == EXIT_INTERNAL and second["answer"]["allow"] is False
        _assert_internal_line(second["answer"]["error"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _ask(path: Path, envelope: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(json.dumps(envelope).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection without an answer"
            data += chunk
    assert data.count(b"\n") == 1
    reply: dict[str, Any] = json.loads(data)
    return reply


def _review(image: str) -> dict[str, Any]:
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": image}]}}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-bug",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": "default",
            "object": pod,
        },
    }


def _admit(webhook_server: WebhookServerFactory, checker: ImageChecker) -> dict[str, Any]:
    served = webhook_server(checker, WebhookConfig())
    reply = served.client().post("/validate", json=_review(IMAGE))
    assert reply.status_code == 200, reply.text  # an answer, not a 500 left to failurePolicy
    response: dict[str, Any] = reply.json()["response"]
    assert response["uid"] == "u-bug"
    return response


def test_a_bug_in_the_webhook_pipeline_is_a_denial(
    settings: Settings, buggy_pipeline: None, webhook_server: WebhookServerFactory
) -> None:
    response = _admit(webhook_server, PipelineChecker(settings))
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "\n" not in message
    assert f"internal error: RuntimeError: {BUG}" in message and "please report" in message


def test_a_bug_in_the_webhook_itself_still_answers_the_review(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, webhook_server: WebhookServerFactory
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(BUG)

    monkeypatch.setattr(Decider, "decide", broken)

    class Allowing:
        def __call__(self, reference: str, context: Context) -> Verdict:
            raise AssertionError("never asked")

    response = _admit(webhook_server, Allowing())
    assert response["allowed"] is False
    assert f"internal error: RuntimeError: {BUG}" in response["status"]["message"]


def test_every_public_error_class_lives_in_errors_py() -> None:
    """Public exceptions are defined in trustkit/errors.py; others may only re-export them."""
    import importlib
    import pkgutil

    strays = []
    for info in pkgutil.walk_packages(trustkit.__path__, "trustkit."):
        if info.name == "trustkit.__main__":
            continue  # runs the CLI when imported
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, TrustkitError)
                and not name.startswith("_")
                and value.__module__ == info.name
                and info.name != "trustkit.errors"
            ):
                strays.append(f"{info.name}.{name}")
    assert sorted(strays) == []


def test_moved_error_classes_keep_their_old_import_paths() -> None:
    from trustkit.registry import TLSVerificationError as from_package
    from trustkit.registry.client import NotFoundError, TLSVerificationError

    assert TLSVerificationError is errors.TLSVerificationError is from_package
    assert NotFoundError is errors.NotFoundError
    assert errors.TagMovedError.kind is errors.FailureKind.TAG_MOVED
    assert issubclass(errors.TagMovedError, errors.NotSignedError)  # still exit 1, "not signed"


def test_the_internal_line_is_one_line_whatever_the_message() -> None:
    line = errors.internal_error_line(KeyError("a\nb\n\n  c"))
    assert "\n" not in line and line.startswith("internal error: KeyError: ")
    assert errors.internal_error_line(RuntimeError()).startswith(
        "internal error: RuntimeError: (no message)"
    )
