"""``trustkit trust ...`` through click's runner and through main() for the exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures.trust import digest_for

from trustkit.cli import cli, main
from trustkit.stores import escape_gun

REPO = "localhost:5000/cli/app"
DIGEST = digest_for("cli-v1")


def invoke(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def exit_code(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    captured = capsys.readouterr()
    code = caught.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def signed_key_id(pub: Path) -> str:
    from trustkit.keys import load_public_key

    return str(load_public_key(pub.read_bytes()).keyid)[:7]


@pytest.fixture
def alice_pub(passphrase_env: Path, tmp_path: Path) -> Path:
    result = invoke("trust", "key", "generate", "alice", "--dir", str(tmp_path / "pub"))
    assert result.exit_code == 0, result.output
    return tmp_path / "pub" / "alice.pub"


@pytest.fixture
def signed(alice_pub: Path) -> Path:
    assert invoke("trust", "signer", "add", "--key", str(alice_pub), "alice", REPO).exit_code == 0
    result = invoke("trust", "sign", f"{REPO}:v1", "--digest", DIGEST, "--size", "42")
    assert result.exit_code == 0, result.output
    assert "targets/releases" in result.output
    return alice_pub


def test_signer_add_sign_verify_inspect(signed: Path) -> None:
    result = invoke("trust", "verify", f"{REPO}:v1")
    assert result.exit_code == 0
    assert result.output.strip() == DIGEST
    report = json.loads(invoke("trust", "inspect", f"{REPO}").output)
    assert report[0]["Name"] == REPO
    assert report[0]["SignedTags"] == [
        {"SignedTag": "v1", "Digest": DIGEST.split(":")[1], "Signers": ["alice"]}
    ]
    assert [s["Name"] for s in report[0]["Signers"]] == ["alice"]
    pretty = invoke("trust", "inspect", "--pretty", f"{REPO}:v1").output
    assert "Signatures for localhost:5000/cli/app" in pretty
    assert DIGEST.split(":")[1] in pretty
    assert "Root Key:" in pretty and "Repository Key:" in pretty


def test_inspect_several_and_unsigned_tag(signed: Path) -> None:
    report = json.loads(invoke("trust", "inspect", f"{REPO}:v1", f"{REPO}:nope").output)
    assert [len(r["SignedTags"]) for r in report] == [1, 0]


def test_verify_with_root_file_after_rotations(
    signed: Path, passphrase_env: Path, tmp_path: Path
) -> None:
    root_v1 = tmp_path / "root.json"
    shutil.copy(passphrase_env / "server" / escape_gun(REPO) / "1.root.json", root_v1)
    for role in ("root", "targets", "snapshot", "timestamp"):
        result = invoke("trust", "key", "rotate", REPO, "--role", role)
        assert result.exit_code == 0, result.output
    renewed = invoke("trust", "renew", REPO, "--role", "root", "--role", "releases")
    assert renewed.exit_code == 0
    assert "root, snapshot, targets/releases, timestamp" in renewed.output
    shutil.rmtree(
        passphrase_env / "tuf", ignore_errors=True
    )  # a client with nothing cached but the pinned root
    result = invoke("trust", "verify", f"{REPO}:v1", "--root-file", str(root_v1))
    assert result.exit_code == 0
    assert result.output.strip() == DIGEST


def test_revoke(signed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    invoke("trust", "sign", f"{REPO}:v2", "--digest", DIGEST, "--size", "42")
    # no registry answers at localhost:5000: the trust data is revoked all the same, and the
    # cosign signature left behind is named as an environment failure (exit 3), not hidden
    code, _, err = exit_code(capsys, "trust", "revoke", f"{REPO}:v1")
    assert code == 3 and err.count("\n") == 1
    assert "revoked" in err and "cosign signature could not be removed" in err
    assert "trustkit trust revoke" in err
    code, _, err = exit_code(capsys, "trust", "verify", f"{REPO}:v1")
    assert code == 1
    assert err.strip() == "trustkit: tag v1 of localhost:5000/cli/app is not signed"
    # revoking every tag asks first; with no terminal to ask on, it refuses (exit 2) and says how
    code, _, err = exit_code(capsys, "trust", "revoke", REPO)
    assert code == 2 and "--yes" in err and err.count("\n") == 1
    assert invoke("trust", "verify", f"{REPO}:v2").exit_code == 0
    assert invoke("trust", "revoke", "--yes", REPO).exit_code == 0
    assert json.loads(invoke("trust", "inspect", REPO).output)[0]["SignedTags"] == []


def test_signer_remove(signed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = exit_code(capsys, "trust", "signer", "remove", "alice", REPO)
    assert code == 2
    assert "last signer" in err and "--force" in err
    assert invoke("trust", "signer", "remove", "--force", "alice", REPO).exit_code == 0
    assert json.loads(invoke("trust", "inspect", REPO).output)[0]["Signers"] == []


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["trust", "verify", "localhost:5000/Bad:v1"], 2, "invalid reference format"),
        # never signed is "not trusted" (exit 1), as pull, gate and the hooks say (issue 15)
        (["trust", "verify", "localhost:5000/unknown:v1"], 1, "no trust data for localhost"),
        (["trust", "sign", "localhost:5000/cli/app"], 2, "has no tag"),
        # without --digest the digest is resolved from the registry, which is not running here
        (["trust", "sign", "127.0.0.1:9/cli/app:v2"], 3, "registry 127.0.0.1:9 is unreachable"),
        (["trust", "sign", "localhost:5000/cli/app:v2", "--digest", "sha256:00"], 2, "both"),
        (
            ["trust", "sign", "localhost:5000/cli/app:v2", "--digest", "md5:00", "--size", "1"],
            2,
            "invalid digest",
        ),
        (["trust", "signer", "add", "--key", "/nonexistent.pub", "bob", REPO], 2, "does not exist"),
        (["trust", "signer", "add", "--key", "/dev/null", "releases", REPO], 2, "reserved"),
        (["trust", "signer", "remove", "bob", REPO], 2, "bob is not a signer"),
        (["trust", "signer", "add", "--key", "/dev/null", "alice", f"{REPO}:v1"], 2, "repository"),
        (["trust", "key", "rotate", "localhost:5000/unknown"], 2, "no trust data"),
        (["trust", "verify", f"{REPO}:v1", "--root-file", "/nonexistent"], 2, "does not exist"),
        (["trust", "verify", f"{REPO}:v1", "--root-file", __file__], 2, "not TUF root metadata"),
    ],
)
def test_bad_input_is_one_line(
    signed: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, _, err = exit_code(capsys, *argv)
    assert got == code
    assert message in err
    assert "Traceback" not in err


def test_wrong_passphrase(
    signed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "not-the-passphrase")
    code, _, err = exit_code(
        capsys, "trust", "sign", f"{REPO}:v2", "--digest", DIGEST, "--size", "1"
    )
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"trustkit: wrong passphrase for the delegation key {signed_key_id(signed)} (alice)"
    )


def test_missing_keys(
    signed: Path,
    passphrase_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SERVIN_TRUST_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", f"file://{passphrase_env / 'server'}")
    code, _, err = exit_code(
        capsys, "trust", "sign", f"{REPO}:v2", "--digest", DIGEST, "--size", "1"
    )
    assert code == 2
    assert "not a signer" in err
    code, _, err = exit_code(capsys, "trust", "key", "rotate", REPO, "--role", "root")
    assert code == 2 and "root key" in err
    # this fresh client trusts on first use and verifies
    code, out, _ = exit_code(capsys, "trust", "verify", f"{REPO}:v1")
    assert (code, out.strip()) == (0, DIGEST)


def test_world_readable_key_file(
    passphrase_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file = tmp_path / "bob.key"
    key_file.write_bytes(pem)
    key_file.chmod(0o644)
    code, _, err = exit_code(capsys, "trust", "key", "load", str(key_file))
    assert code == 2 and "readable by other users" in err
    key_file.chmod(0o600)
    code, _, _ = exit_code(capsys, "trust", "key", "load", str(key_file))
    assert code == 0


def test_untrusted_exit_code(
    signed: Path, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = passphrase_env / "server" / escape_gun(REPO)
    head = json.loads((directory / "current.json").read_text())
    (directory / f"{head['timestamp']}.timestamp.json").write_bytes(b"{" + b" " * 20000)
    shutil.rmtree(passphrase_env / "tuf", ignore_errors=True)
    code, _, err = exit_code(capsys, "trust", "verify", f"{REPO}:v1")
    assert code == 1
    assert "too large" in err


def test_help_lists_commands() -> None:
    output = invoke("trust", "--help").output
    for name in ("signer", "sign", "revoke", "inspect", "verify", "key", "renew"):
        assert name in output
    assert "rotate" in invoke("trust", "key", "--help").output
