"""`trustkit trust key generate|load|list` through click, with the real key store."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trustkit.cli.trust_keys import key
from trustkit.config import Settings
from trustkit.errors import BadInputError, KeyStoreError, PassphraseError
from trustkit.keys import KeyStore, load_public_key

DCT_PASS = "dct-sample-pass"


def run(settings: Settings, *args: str) -> click.testing.Result:
    return CliRunner().invoke(key, list(args), obj=settings)


def _write_key(path: Path, mode: int, password: bytes | None = None) -> Path:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )
    )
    path.chmod(mode)
    return path


def test_generate_writes_pub_and_stores_signer(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "pubs"
    result = run(settings, "generate", "alice", "--dir", str(out))
    assert result.exit_code == 0, result.output
    keyid = result.stdout.strip()
    assert len(keyid) == 64
    public = load_public_key((out / "alice.pub").read_bytes())
    assert public.keyid == keyid
    assert "Corresponding public key available" in result.stderr
    record = KeyStore(settings).get(keyid)
    assert (record.role, record.name, record.gun, record.keytype) == (
        "delegation",
        "alice",
        None,
        "ecdsa",
    )
    assert "PRIVATE" not in result.output


def test_generate_ed25519_into_cwd(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(key, ["generate", "bob", "--type", "ed25519"], obj=settings)
    assert result.exit_code == 0, result.output
    assert load_public_key((tmp_path / "bob.pub").read_bytes()).keytype == "ed25519"
    again = runner.invoke(key, ["generate", "bob"], obj=settings)
    assert isinstance(again.exception, BadInputError)
    assert "already exists" in str(again.exception)
    assert len(KeyStore(settings).records()) == 1  # the refused run stored nothing


@pytest.mark.parametrize("name", ["Alice", "-x", "a b", "a/b", "é", "a" * 65])
def test_generate_bad_name(settings: Settings, tmp_path: Path, name: str) -> None:
    result = run(settings, "generate", "--dir", str(tmp_path), "--", name)
    assert isinstance(result.exception, BadInputError)
    assert result.exception.exit_code == 2
    assert not list(tmp_path.glob("*.pub"))


def test_generate_without_tty_or_env(trust_dir: Path, tmp_path: Path) -> None:
    result = run(Settings(trust_dir=trust_dir), "generate", "carol", "--dir", str(tmp_path))
    assert isinstance(result.exception, PassphraseError)
    assert "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE" in str(result.exception)
    assert not (tmp_path / "carol.pub").exists()


def test_load_refuses_readable_file(settings: Settings, tmp_path: Path) -> None:
    path = _write_key(tmp_path / "dave.pem", 0o644)
    result = run(settings, "load", str(path))
    assert isinstance(result.exception, KeyStoreError)
    assert f"chmod 600 {path}" in result.exception.one_line()
    assert KeyStore(settings).records() == []


def test_load_plain_key_named_by_stem(settings: Settings, tmp_path: Path) -> None:
    path = _write_key(tmp_path / "erin.pem", 0o600)
    result = run(settings, "load", str(path))
    assert result.exit_code == 0, result.output
    record = KeyStore(settings).get(result.stdout.strip())
    assert (record.name, record.role) == ("erin", "delegation")


def test_load_encrypted_with_repository_passphrase(settings: Settings, tmp_path: Path) -> None:
    assert settings.repository_passphrase is not None
    path = _write_key(tmp_path / "enc.pem", 0o600, settings.repository_passphrase.encode())
    result = run(settings, "load", str(path), "--name", "frank")
    assert result.exit_code == 0, result.output
    assert KeyStore(settings).records(name="frank")


def test_load_encrypted_wrong_and_missing_passphrase(
    settings: Settings, trust_dir: Path, tmp_path: Path
) -> None:
    path = _write_key(tmp_path / "enc.pem", 0o600, b"other-passphrase")
    wrong = run(settings, "load", str(path))
    assert isinstance(wrong.exception, PassphraseError)
    assert "wrong passphrase" in str(wrong.exception)
    none = run(Settings(trust_dir=trust_dir), "load", str(path))
    assert isinstance(none.exception, PassphraseError)


def test_load_real_dct_key(settings: Settings, data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "releases.pem"
    path.write_bytes((data_dir / "keys" / "dct-releases-key.pem").read_bytes())
    path.chmod(0o600)
    dct = settings.with_changes(repository_passphrase=DCT_PASS)
    result = run(dct, "load", str(path))
    assert result.exit_code == 0, result.output
    expected = load_public_key((data_dir / "keys" / "dct-releases.pem").read_bytes())
    assert result.stdout.strip() == expected.keyid


def test_load_missing_file_and_bad_stem(settings: Settings, tmp_path: Path) -> None:
    missing = run(settings, "load", str(tmp_path / "nope.pem"))
    assert isinstance(missing.exception, BadInputError)
    assert "does not exist" in str(missing.exception)
    path = _write_key(tmp_path / "Bad Name.pem", 0o600)
    bad = run(settings, "load", str(path))
    assert isinstance(bad.exception, BadInputError)
    assert run(settings, "load", str(path), "--name", "good").exit_code == 0


def test_list_json(settings: Settings, tmp_path: Path) -> None:
    run(settings, "generate", "gina", "--dir", str(tmp_path))
    result = run(settings, "list", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [(k["name"], k["role"], k["private"]) for k in listed] == [("gina", "delegation", True)]
    assert run(settings, "list", "--role", "root", "--json").stdout.strip() == "[]"


def test_exit_codes_through_main(passphrase_env: Path, tmp_path: Path) -> None:
    """When the `trust` group is present, errors map to exit codes through trustkit.cli.main."""
    from trustkit.cli import cli, main

    if cli.get_command(click.Context(cli), "trust") is None:
        pytest.skip("the trust command group is not built yet")
    with pytest.raises(SystemExit) as bad_name:
        main(["trust", "key", "generate", "Bad!", "--dir", str(tmp_path)])
    assert bad_name.value.code == 2
    path = _write_key(tmp_path / "open.pem", 0o644)
    with pytest.raises(SystemExit) as readable:
        main(["trust", "key", "load", str(path)])
    assert readable.value.code == 2
    with pytest.raises(SystemExit) as ok:
        main(["trust", "key", "generate", "hank", "--dir", str(tmp_path)])
    assert ok.value.code == 0


def test_load_scanner_role(settings: Settings, tmp_path: Path) -> None:
    path = _write_key(tmp_path / "ci-scanner.pem", 0o600)
    result = run(settings, "load", str(path), "--role", "scanner")
    assert result.exit_code == 0, result.output
    assert [r.name for r in KeyStore(settings).records(role="scanner")] == ["ci-scanner"]


def test_cli_constants_match_the_key_store() -> None:
    """trust_keys spells these out so `trustkit trust --help` need not import trustkit.keys."""
    from trustkit.cli import trust_keys
    from trustkit.keys import KEY_TYPES, KeyRole
    from trustkit.keys.pem import MAX_KEY_FILE

    assert tuple(trust_keys.KEY_TYPES) == tuple(KEY_TYPES)
    assert set(trust_keys.KEY_ROLES) == {r.value for r in KeyRole}
    assert set(trust_keys.SIGNER_ROLES) == {KeyRole.DELEGATION.value, KeyRole.SCANNER.value}
    assert trust_keys.MAX_KEY_FILE == MAX_KEY_FILE


def test_trust_help_does_not_import_the_key_store() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from trustkit.cli import main\n"
        "try:\n"
        "    main(['trust', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('securesystemslib' in sys.modules, 'tuf' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"
