"""The real notary CLI as a peer: keys it generates (as `docker trust key generate` does) load
into trustkit and sign tags that verify, and its public key file is accepted by `signer add`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from trustkit.cli import main
from trustkit.config import Settings
from trustkit.keys import KeyRecord, KeyStore, load_public_key

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("notary") is None, reason="Debian's notary is not installed"),
]

NOTARY_PASS = "notary-delegation-pass"
REPO = "localhost:5000/notary-peer/app"
DIGEST = "sha256:" + "d" * 64


def _notary_key(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """`notary key generate ecdsa --role NAME -o DIR`: NAME.pem (public) + NAME-key.pem."""
    env = dict(os.environ, NOTARY_DELEGATION_PASSPHRASE=NOTARY_PASS)
    done = subprocess.run(
        ["notary", "-d", str(tmp_path / "notary"), "key", "generate", "ecdsa",
         "--role", name, "-o", str(tmp_path / name)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def test_a_notary_generated_key_signs_for_trustkit(
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    public, private = _notary_key(tmp_path, "alice")
    assert private.stat().st_mode & 0o077 == 0  # notary writes it 0600, as trustkit requires
    # the encrypted notary file is unlocked with the passphrase notary used (docker's rule:
    # the repository passphrase variable unlocks an imported file)
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE", NOTARY_PASS)
    code, out, err = _run(capsys, "trust", "key", "load", str(private), "--name", "alice")
    assert code == 0, err
    keyid = out.strip()
    assert load_public_key(public.read_bytes()).keyid == keyid  # same key on both sides
    code, _, err = _run(capsys, "trust", "signer", "add", "--key", str(public), "alice", REPO)
    assert code == 0, err
    code, out, err = _run(capsys, "trust", "sign", f"{REPO}:v1", "--digest", DIGEST, "--size", "42")
    assert code == 0, err
    assert "targets/alice" in out and "targets/releases" in out
    code, out, _ = _run(capsys, "trust", "verify", f"{REPO}:v1")
    assert code == 0 and out.strip() == DIGEST
    # trustkit keeps its own encrypted copy, 0600, re-encrypted with its passphrase
    assert [r.keyid for r in _records_named(passphrase_env, "alice")] == [keyid]
    stored = passphrase_env / "private" / f"{keyid}.key"
    assert stored.exists() and stored.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" not in stored.read_bytes()  # PKCS#12, encrypted under our passphrase


def test_a_wrong_passphrase_for_a_notary_key_is_one_line(
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, private = _notary_key(tmp_path, "bob")
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "not-the-notary-pass")
    code, _, err = _run(capsys, "trust", "key", "load", str(private), "--name", "bob")
    assert code == 2
    assert err.startswith("trustkit: ") and err.count("\n") == 1 and "Traceback" not in err


def _records_named(trust_dir: Path, name: str) -> list[KeyRecord]:
    return KeyStore(Settings(trust_dir=trust_dir)).records(name=name)
