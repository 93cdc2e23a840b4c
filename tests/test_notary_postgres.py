"""The production shape: notary-server over HTTPS and notary-signer (mutual TLS) on PostgreSQL.
trustkit trusts the server's CA from registries.json, as for a registry, writes and reads; the
notary CLI sees trustkit's writes; without the CA the server is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fixtures.notary import NOTARY_ENV, NotaryCLI, NotaryTLSServer, needs_notary

from trustkit.cli import main
from trustkit.config import Settings
from trustkit.keys import KeyStore

pytestmark = [pytest.mark.peer, needs_notary]

DIGEST = hashlib.sha256(b"postgres v1").hexdigest()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def test_write_and_read_over_tls_on_postgres(
    notary_postgres: NotaryTLSServer,
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gun = "localhost:5000/pg/app"
    cli = NotaryCLI(notary_postgres.url, tmp_path / "notary", ca_file=notary_postgres.ca_file)
    cli.run("init", "-p", gun)
    cli.run("key", "rotate", gun, "snapshot", "-r")  # the snapshot key lives in the signer's DB
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", notary_postgres.url)

    # without the server's CA: refused as an untrusted TLS peer, one line
    code, _, err = _run(capsys, "trust", "verify", f"{gun}:v1")
    assert code == 1 and "TLS certificate" in err and err.count("\n") == 1

    host = notary_postgres.url.removeprefix("https://")
    registries = tmp_path / "registries.json"
    doc = {"registries": {host: {"tls": {"ca_file": str(notary_postgres.ca_file)}}}}
    registries.write_text(json.dumps(doc))
    monkeypatch.setenv("SERVIN_REGISTRIES_CONFIG", str(registries))

    keys = KeyStore(Settings.from_env())
    for path in (cli.trust_dir / "private").glob("*.key"):
        if b"role: targets" in path.read_bytes():
            keys.import_private_pem(
                path.read_bytes(),
                role="targets",
                pem_passphrase=NOTARY_ENV["NOTARY_TARGETS_PASSPHRASE"],
            )
    code, _, err = _run(capsys, "trust", "key", "generate", "dana", "--dir", str(tmp_path))
    assert code == 0, err
    code, _, err = _run(capsys, "trust", "signer", "add", "--key", str(tmp_path / "dana.pub"),
                        "dana", gun)  # fmt: skip
    assert code == 0, err
    code, _, err = _run(capsys, "trust", "sign", f"{gun}:v1", "--digest", f"sha256:{DIGEST}",
                        "--size", "11")  # fmt: skip
    assert code == 0, err

    # the notary CLI (fresh trust dir) reads trustkit's write through the same server
    fresh = NotaryCLI(notary_postgres.url, tmp_path / "fresh", ca_file=notary_postgres.ca_file)
    assert DIGEST in fresh.run("lookup", gun, "v1")
    assert "targets/dana" in fresh.run("delegation", "list", gun)
    # and trustkit reads the CLI's next write
    cli.run("addhash", "-p", gun, "v2", "3", "--sha256", "cd" * 32)
    code, out, err = _run(capsys, "trust", "verify", f"{gun}:v2")
    assert (code, out.strip()) == (0, "sha256:" + "cd" * 32), err
    code, out, err = _run(capsys, "trust", "verify", f"{gun}:v1")
    assert (code, out.strip()) == (0, f"sha256:{DIGEST}"), err


def test_created_and_rotated_from_trustkit_on_postgres(
    notary_postgres: NotaryTLSServer,
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A collection trustkit creates on the production shape (the server's ECDSA keys held by
    notary-signer in PostgreSQL), then its root and the server's keys rotated; the notary CLI
    that trusted the first root follows every step."""
    gun = "localhost:5000/pg/created"
    host = notary_postgres.url.removeprefix("https://")
    registries = tmp_path / "registries.json"
    doc = {"registries": {host: {"tls": {"ca_file": str(notary_postgres.ca_file)}}}}
    registries.write_text(json.dumps(doc))
    monkeypatch.setenv("SERVIN_REGISTRIES_CONFIG", str(registries))
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", notary_postgres.url)
    monkeypatch.setenv("SERVIN_SIGNATURE_FORMATS", "tuf")

    code, _, err = _run(capsys, "trust", "sign", f"{gun}:v1", "--digest", f"sha256:{DIGEST}",
                        "--size", "11")  # fmt: skip
    assert code == 0, err
    early = NotaryCLI(notary_postgres.url, tmp_path / "early", ca_file=notary_postgres.ca_file)
    assert DIGEST in early.run("lookup", gun, "v1")
    for role in ("timestamp", "snapshot", "root"):
        code, out, err = _run(capsys, "trust", "key", "rotate", gun, "--role", role)
        assert code == 0 and len(out.strip()) == 64, f"{role}: {err}"  # the new key id
        tag = f"after-{role}"
        digest = hashlib.sha256(tag.encode()).hexdigest()
        code, _, err = _run(capsys, "trust", "sign", f"{gun}:{tag}", "--digest",
                            f"sha256:{digest}", "--size", "4")  # fmt: skip
        assert code == 0, err
        fresh = NotaryCLI(
            notary_postgres.url, tmp_path / f"fresh-{role}", ca_file=notary_postgres.ca_file
        )
        for client in (early, fresh):
            assert digest in client.run("lookup", gun, tag), role
            assert DIGEST in client.run("lookup", gun, "v1"), role
