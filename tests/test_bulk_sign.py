"""``trust sign REPO --from-file`` / ``--all-tags``: many tags, one publish, all or nothing."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures.registry import Registry, use_registry
from fixtures.trust import TrustedRepo, digest_for

from trustkit.cli import cli, main
from trustkit.collections import list_signed_tags, verify_tag
from trustkit.collections.bulk import parse_sign_lines, sign_many_or_propose
from trustkit.config import Settings
from trustkit.errors import BadInputError, NotSignedError
from trustkit.registry import RegistryClient
from trustkit.stores import LocalDirStore

REPO = "localhost:5000/bulk/app"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def exit_code(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``main`` as a shell runs it: trustkit's errors become exit codes and messages."""
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    captured = capsys.readouterr()
    code = caught.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err


def _lines(count: int, start: int = 0) -> str:
    return "".join(f"t{i} {digest_for(f't{i}')} {100 + i}\n" for i in range(start, count))


def test_file_of_tags_is_signed_in_one_publish(signed_repo: TrustedRepo) -> None:
    store = LocalDirStore(signed_repo.settings.local_server_dir)
    before = store.generation(signed_repo.gun)
    entries = parse_sign_lines(("# recovered tags\n\n" + _lines(300)).encode())
    outcome = sign_many_or_propose(
        signed_repo.settings, signed_repo.gun, entries, keystore=signed_repo.keystore
    )
    assert outcome.published and "targets/releases" in outcome.roles
    # one publish: the timestamp moved by exactly one version
    root, ts = before.split(".")  # type: ignore[union-attr]
    assert store.generation(signed_repo.gun) == f"{root}.{int(ts) + 1}"
    signed = {t.tag: t for t in list_signed_tags(signed_repo.settings, signed_repo.gun)}
    assert len(signed) == 301
    assert signed["t299"].digest == digest_for("t299") and signed["t299"].size == 399


@pytest.mark.parametrize(
    ("bad_line", "why"),
    [
        ("t5 sha256:abc 10", "invalid digest"),
        ("t5 " + digest_for("x") + " ten", "invalid size"),
        ("t5 " + digest_for("x"), "field"),
        ("-bad " + digest_for("x") + " 10", "invalid tag"),
        ("t1 " + digest_for("again") + " 10", "given twice"),
        ("t5 " + digest_for("x") + " 10 extra", "field"),
    ],
)
def test_malformed_line_refuses_the_whole_file(
    signed_repo: TrustedRepo,
    tmp_path: Path,
    passphrase_env: Path,
    capsys: pytest.CaptureFixture[str],
    bad_line: str,
    why: str,
) -> None:
    store = LocalDirStore(signed_repo.settings.local_server_dir)
    before = store.generation(signed_repo.gun)
    lines = _lines(4).splitlines()
    path = tmp_path / "tags.txt"
    path.write_text("\n".join([*lines, bad_line, *_lines(9, 5).splitlines()]) + "\n")
    code, output = exit_code(
        capsys, "trust", "sign", signed_repo.ref.repository, "--from-file", str(path)
    )
    assert code == 2, output
    assert "line 5: " in output and why in output
    assert "nothing was signed" in output
    # nothing published: same generation, no tag of the file trusted
    assert store.generation(signed_repo.gun) == before
    with pytest.raises(NotSignedError):
        verify_tag(signed_repo.settings, signed_repo.tag("t0"))


def test_cli_from_file_signs_and_verifies(
    passphrase_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pub = tmp_path / "pub"
    assert invoke("trust", "key", "generate", "alice", "--dir", str(pub)).exit_code == 0
    add = invoke("trust", "signer", "add", "--key", str(pub / "alice.pub"), "alice", REPO)
    assert add.exit_code == 0, add.output
    path = tmp_path / "tags.txt"
    path.write_text(_lines(50))
    result = invoke("trust", "sign", REPO, "--from-file", str(path))
    assert result.exit_code == 0, result.output
    assert "Successfully signed 50 tag(s)" in result.output
    verified = invoke("trust", "verify", f"{REPO}:t42")
    assert verified.exit_code == 0 and verified.output.strip() == digest_for("t42")
    code, output = exit_code(capsys, "trust", "sign", REPO, "--from-file", str(path), "--all-tags")
    assert code == 2 and "one of" in output


def test_parse_rejects_empty_and_non_utf8() -> None:
    with pytest.raises(BadInputError, match="no tags"):
        parse_sign_lines(b"# only a comment\n")
    with pytest.raises(BadInputError, match="UTF-8"):
        parse_sign_lines(b"t1 \xff 10\n")


def _push_tags(
    settings: Settings, registry: Registry, repo: str, tags: list[str]
) -> dict[str, str]:
    config = b"{}"
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    pushed = {}
    with RegistryClient(settings, registry.host) as client:
        client.upload_blob(repo, config, config_digest)
        for tag in tags:
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest,
                        "size": 2,
                    },
                    "layers": [],
                    "annotations": {"tag": tag},
                }
            ).encode()
            pushed[tag] = client.put_manifest(
                repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json"
            )
    return pushed


def test_all_tags_signs_what_the_registry_holds(
    settings: Settings,
    registry: Registry,
    passphrase_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVIN_CONFIG_DIR", str(settings.config_dir))
    use_registry(settings, registry)
    repo = f"bulk/{uuid.uuid4().hex[:8]}"
    reserved = "sha256-" + "a" * 64 + ".sig"
    pushed = _push_tags(settings, registry, repo, ["v1", "v2", "latest", reserved])
    pub = tmp_path / "pub"
    assert invoke("trust", "key", "generate", "alice", "--dir", str(pub)).exit_code == 0
    full = f"{registry.host}/{repo}"
    assert (
        invoke("trust", "signer", "add", "--key", str(pub / "alice.pub"), "alice", full).exit_code
        == 0
    )
    result = invoke("trust", "sign", full, "--all-tags")
    assert result.exit_code == 0, result.output
    assert "Successfully signed 3 tag(s)" in result.output
    for tag in ("v1", "v2", "latest"):
        verified = invoke("trust", "verify", f"{full}:{tag}")
        assert verified.exit_code == 0 and verified.output.strip() == pushed[tag]
    assert invoke("trust", "verify", f"{full}:{reserved}").exit_code != 0
