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
