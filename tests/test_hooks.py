"""servin hooks over the real pipeline: every stage, malformed requests, environment errors, the
executable (``python -m trustkit hook ...``), the socket server and the entry point."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixtures.pipeline import TRUSTKIT, PipelineWorld, policy_yaml
from fixtures.registry import free_port

from trustkit import hook_server, hooks
from trustkit.cli import cli
from trustkit.collections import verify_tag
from trustkit.config import Settings
from trustkit.errors import UntrustedError
from trustkit.pipeline.flows import push_image
from trustkit.refs import parse

pytestmark = pytest.mark.registry
OTHER_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def hook_settings(
    pipeline_world: PipelineWorld, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The world with one BLOCK policy: HIGH and above."""
    return pipeline_world.with_policies(
        tmp_path_factory.mktemp("hooks"), policy_yaml("vulnerability-policy", severity="HIGH")
    )


def call(settings: Settings, stage: str, request: Any) -> tuple[int, dict[str, Any]]:
    payload = request if isinstance(request, bytes) else json.dumps(request).encode()
    return hooks.handle(settings, stage, payload)


def run_executable(
    world: PipelineWorld, settings: Settings, stage: str, stdin: bytes
) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [*TRUSTKIT, "hook", stage],
        input=stdin,
        capture_output=True,
        env=world.env(settings),
        timeout=60,
        check=False,
    )
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1, (proc.stdout, proc.stderr)  # exactly one JSON answer
    return proc.returncode, json.loads(lines[0])


# --- stages ------------------------------------------------------------------------------------
def test_pre_pull_answers_the_trusted_digest_or_refuses(
    pipeline_world: PipelineWorld, hook_settings: Settings
) -> None:
    code, answer = call(
        hook_settings, "pre-pull", {"operation": "pull", "reference": pipeline_world.ref("clean")}
    )
    assert code == 0 and answer["allow"] is True and answer["action"] == "ALLOW"
    assert answer["digest"] == pipeline_world.digest("clean")
    assert answer["policies"] == [{"policy": "vulnerability-policy", "action": "ALLOW"}]

    code, answer = call(
        hook_settings, "pre-pull", {"operation": "pull", "reference": pipeline_world.ref("juice")}
    )
    assert code == 1 and answer["allow"] is False and answer["action"] == "BLOCK"
    assert answer["digest"] == pipeline_world.digest("juice")
    assert "at or above HIGH" in answer["reasons"][0]
    detail = answer["details"][0]
    assert detail["rule"] == "severity" and "CVE-2021-3711" in detail["findings"]
    assert "affected" not in detail  # compact: servin logs this line

    code, answer = call(
        hook_settings,
        "pre-pull",
        {"operation": "pull", "reference": pipeline_world.ref("unsigned")},
    )
    assert code == 1 and answer["details"][0]["rule"] == "trust" and answer["digest"] is None


def test_post_pull_refuses_a_digest_other_than_the_trusted_one(
    pipeline_world: PipelineWorld, hook_settings: Settings
) -> None:
    ref = pipeline_world.ref("clean")
    trusted = pipeline_world.digest("clean")
    code, answer = call(
        hook_settings, "post-pull", {"operation": "pull", "reference": ref, "digest": trusted}
    )
    assert code == 0 and answer["allow"] and answer["digest"] == trusted
    code, answer = call(
        hook_settings, "post-pull", {"operation": "pull", "reference": ref, "digest": OTHER_DIGEST}
    )
    assert code == 1 and not answer["allow"] and answer["digest"] == trusted
    assert answer["details"][0]["rule"] == "digest"
    assert f"pulled {OTHER_DIGEST}" in answer["reasons"][0] and trusted in answer["reasons"][0]
    # a blocked image stays blocked whatever digest servin got
    code, answer = call(
        hook_settings,
        "post-pull",
        {
            "operation": "pull",
            "reference": pipeline_world.ref("juice"),
            "digest": pipeline_world.digest("juice"),
        },
    )
    assert code == 1 and answer["details"][0]["rule"] == "severity"


def test_pre_push_evaluates_policy_for_the_digest_being_pushed(
    pipeline_world: PipelineWorld, hook_settings: Settings
) -> None:
    for name, code in (("juice", 1), ("clean", 0)):
        request = {
            "operation": "push",
            "reference": pipeline_world.ref(name, "next"),
            "digest": pipeline_world.digest(name),
            "size": pipeline_world.images[name].size,
        }
        got, answer = call(hook_settings, "pre-push", request)
        assert got == code and answer["digest"] == pipeline_world.digest(name)
    # the tag was not signed by pre-push
    with pytest.raises(UntrustedError):
        verify_tag(hook_settings, parse(pipeline_world.ref("clean", "next")))


def test_post_push_signs_an_allowed_tag_and_never_a_blocked_one(
    pipeline_world: PipelineWorld, hook_settings: Settings
) -> None:
    for name, allowed in (("clean", True), ("juice", False)):
        image = pipeline_world.images[name]
        dest = pipeline_world.ref(name, "post-push")
        push_image(hook_settings, image.oci, dest, sign=False)  # what servin uploaded
        request = {
            "operation": "push",
            "reference": dest,
            "digest": image.digest,
            "size": image.size,
            "mediaType": image.media_type,
        }
        code, answer = call(hook_settings, "post-push", request)
        assert answer["allow"] is allowed and code == (0 if allowed else 1)
        if allowed:
            assert answer["signedRoles"]
            trusted = verify_tag(hook_settings, parse(dest))
            assert (trusted.digest, trusted.size) == (image.digest, image.size)
        else:
            assert "signedRoles" not in answer
            with pytest.raises(UntrustedError):
                verify_tag(hook_settings, parse(dest))
    # content trust off: policy still decides, nothing is signed
    off = hook_settings.with_changes(content_trust=False)
    dest = pipeline_world.ref("clean", "post-push-off")
    clean = pipeline_world.images["clean"]
    code, answer = call(
        off,
        "post-push",
        {"operation": "push", "reference": dest, "digest": clean.digest, "size": clean.size},
    )
    assert code == 0 and "signedRoles" not in answer
    with pytest.raises(UntrustedError):
        verify_tag(hook_settings, parse(dest))


def test_a_require_signed_policy_does_not_stop_the_push_that_signs(
    pipeline_world: PipelineWorld, tmp_path: Path
) -> None:
    """Policy runs before signing; require_signed is judged against the signature being made."""
    settings = pipeline_world.with_policies(
        tmp_path, policy_yaml("signed-only", require_signed=True, require_scan=False)
    )
    clean = pipeline_world.images["clean"]
    dest = pipeline_world.ref("clean", "signed-by-hook")
    request = {"operation": "push", "reference": dest, "digest": clean.digest, "size": clean.size}
    assert call(settings, "pre-push", request)[0] == 0
    code, answer = call(settings, "post-push", request)
    assert code == 0 and answer["signedRoles"]
    assert verify_tag(settings, parse(dest)).digest == clean.digest
    # the pull side now sees the signature the policy asked for
    assert call(settings, "pre-pull", {"operation": "pull", "reference": dest})[0] == 0
    # the same through trustkit push (content trust on)
    pushed = pipeline_world.ref("clean", "signed-by-cli")
    result = CliRunner().invoke(
        cli, ["push", clean.oci, pushed], env=pipeline_world.cli_env(settings)
    )
    assert result.exit_code == 0, result.output
    assert verify_tag(settings, parse(pushed)).digest == clean.digest
    # with content trust off nothing will be signed: the policy refuses the push
    off = settings.with_changes(content_trust=False)
    unsigned = dict(request, reference=pipeline_world.ref("clean", "never-signed"))
    code, answer = call(off, "pre-push", unsigned)
    assert code == 1 and answer["details"][0]["rule"] == "require_signed"


# --- malformed requests and the environment ---------------------------------------------------
MALFORMED: dict[str, tuple[str, bytes, str]] = {
    "bad-json": ("pre-pull", b'{"operation": "pull", ', "not valid JSON"),
    "not-object": ("pre-pull", b'["pull"]', "must be a JSON object"),
    "not-utf8": ("pre-pull", b'{"operation": "\xff"}', "not valid JSON"),
    "no-operation": ("pre-pull", b'{"reference": "alpine"}', '"operation"'),
    "no-reference": ("pre-pull", b'{"operation": "pull"}', '"reference"'),
    "bad-reference": ("pre-pull", b'{"operation": "pull", "reference": "UPPER/x::y"}', ""),
    "bad-digest": (
        "post-pull",
        b'{"operation": "pull", "reference": "alpine", "digest": "sha256:xyz"}',
        "",
    ),
    "bad-size": (
        "post-push",
        b'{"operation": "push", "reference": "a:1", "digest": "sha256:' + b"0" * 64 + b'", '
        b'"size": -1}',
        '"size"',
    ),
    "wrong-operation": ("pre-push", b'{"operation": "pull", "reference": "alpine"}', "pre-push"),
    "post-pull-no-digest": ("post-pull", b'{"operation": "pull", "reference": "alpine"}', "digest"),
    "pre-push-no-digest": ("pre-push", b'{"operation": "push", "reference": "alpine"}', "digest"),
    "post-push-no-size": (
        "post-push",
        b'{"operation": "push", "reference": "a:1", "digest": "sha256:' + b"0" * 64 + b'"}',
        '"size"',
    ),
    "digest-disagrees": (
        "pre-push",
        b'{"operation": "push", "reference": "a@sha256:'
        + b"1" * 64
        + b'", "digest": "sha256:'
        + b"0" * 64
        + b'"}',
        "not sha256:0",
    ),
    "oversize": (
        "pre-pull",
        b'{"operation": "pull", "reference": "alpine", "pad": "' + b"x" * 70_000 + b'"}',
        "larger than",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_exit_2_with_a_json_error(
    case: str, pipeline_world: PipelineWorld, hook_settings: Settings
) -> None:
    stage, payload, words = MALFORMED[case]
    code, answer = call(hook_settings, stage, payload)
    assert code == 2 and answer["allow"] is False
    assert isinstance(answer["error"], str) and words in answer["error"]


def test_an_unknown_stage_is_bad_input(hook_settings: Settings) -> None:
    code, answer = call(hook_settings, "mid-pull", {"operation": "pull", "reference": "alpine"})
    assert code == 2 and "unknown hook" in answer["error"]


def test_registry_down_is_an_environment_error(
    pipeline_world: PipelineWorld, hook_settings: Settings
) -> None:
    down = f"127.0.0.1:{free_port()}/t/gone:v1"  # nothing listens there
    off = hook_settings.with_changes(content_trust=False)  # policy needs the registry's digest
    code, answer = call(off, "pre-pull", {"operation": "pull", "reference": down})
    assert code == 3 and answer["allow"] is False and answer["error"]


def test_the_executable_speaks_the_protocol(
    pipeline_world: PipelineWorld, hook_settings: Settings
) -> None:
    world = pipeline_world
    request = {"operation": "pull", "reference": world.ref("clean")}
    code, answer = run_executable(world, hook_settings, "pre-pull", json.dumps(request).encode())
    assert code == 0 and answer["digest"] == world.digest("clean")
    code, answer = run_executable(world, hook_settings, "pre-pull", b"{not json")
    assert code == 2 and "not valid JSON" in answer["error"]
    code, answer = run_executable(
        world, hook_settings, "pre-pull", json.dumps({**request, "pad": "x" * 70_000}).encode()
    )
    assert code == 2 and "larger than" in answer["error"]
    down = {"operation": "pull", "reference": f"127.0.0.1:{free_port()}/t/gone:v1"}
    off = hook_settings.with_changes(content_trust=False)
    code, answer = run_executable(world, off, "pre-pull", json.dumps(down).encode())
    assert code == 3 and answer["allow"] is False


# --- persistent mode ---------------------------------------------------------------------------
@pytest.fixture
def hook_socket(hook_settings: Settings) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="tk-", dir="/tmp"))  # AF_UNIX paths are short
    path = directory / "hooks.sock"
    server, thread = hook_server.start_background(hook_settings, path)
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        path.unlink(missing_ok=True)
        directory.rmdir()


def test_socket_server_answers_many_requests_on_one_connection(
    pipeline_world: PipelineWorld, hook_settings: Settings, hook_socket: Path
) -> None:
    assert hook_socket.stat().st_mode & 0o777 == 0o600
    clean = {"operation": "pull", "reference": pipeline_world.ref("clean")}
    juice = {"operation": "pull", "reference": pipeline_world.ref("juice")}
    lines = [
        {"hook": "pre-pull", "request": clean},
        b"this is not json",
        {"hook": "pre-pull"},
        ["not", "an", "object"],
        {"hook": "pre-pull", "request": juice},
        {"hook": "pre-push", "request": {"operation": "pull", "reference": "alpine"}},
    ]
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(hook_socket))
        reader = conn.makefile("rb")
        replies = []
        for line in lines:
            data = line if isinstance(line, bytes) else json.dumps(line).encode()
            conn.sendall(data + b"\n")
            replies.append(json.loads(reader.readline()))
    assert [r["exit"] for r in replies] == [0, 2, 2, 2, 1, 2]
    assert replies[0]["answer"]["digest"] == pipeline_world.digest("clean")
    assert all("malformed hook envelope" in r["answer"]["error"] for r in replies[1:4])
    assert (
        replies[4]["answer"]
        == call(
            hook_settings,
            "pre-pull",
            {"operation": "pull", "reference": pipeline_world.ref("juice")},
        )[1]
    )
    assert "pre-push hook got operation" in replies[5]["answer"]["error"]


def test_socket_server_refuses_an_endless_line(hook_socket: Path) -> None:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(hook_socket))
        conn.sendall(b"{" + b" " * (hooks.MAX_REQUEST_BYTES + 4096))
        reply = json.loads(conn.makefile("rb").readline())
    assert reply["exit"] == 2 and "too long" in reply["answer"]["error"]


def test_the_entry_point_group_loads_the_hooks() -> None:
    found = importlib.metadata.entry_points(group="servin.hooks")
    (entry,) = [e for e in found if e.name == "trustkit"]
    table = entry.load()()
    assert sorted(table) == sorted(hooks.STAGES)
    assert table["pre-pull"] is hooks.pre_pull and table["post-push"] is hooks.post_push
