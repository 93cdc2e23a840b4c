"""trustkit writes to a real notary-server and the real notary CLI sees it; the CLI writes and
trustkit sees it. Keys are the ones notary made (imported from its trust dir)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fixtures.notary import NOTARY_ENV, NotaryCLI, NotaryServer, needs_notary

from trustkit.cli import main
from trustkit.config import Settings
from trustkit.keys import KeyStore, load_public_key
from trustkit.notary.writer import notary_keyid

pytestmark = [pytest.mark.peer, needs_notary]

D1 = hashlib.sha256(b"one").hexdigest()
D2 = hashlib.sha256(b"two").hexdigest()
D3 = hashlib.sha256(b"three").hexdigest()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def _notary_private_key(cli: NotaryCLI, role: str) -> bytes:
    for path in (cli.trust_dir / "private").glob("*.key"):
        data = path.read_bytes()
        if f"role: {role}".encode() in data:
            return data
    raise AssertionError(f"no {role} key in {cli.trust_dir}")


def test_both_directions_with_the_notary_cli(
    notary_server: NotaryServer,
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gun = "localhost:5000/write/app"
    cli = NotaryCLI(notary_server.url, tmp_path / "notary")
    cli.run("init", "-p", gun)
    cli.run("key", "rotate", gun, "snapshot", "-r")  # as docker: the server signs snapshot
    cli.run("addhash", "-p", gun, "cli-tag", "3", "--sha256", D1)
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", notary_server.url)
    # Notary signatures only: no registry runs here for cosign's .sig tags
    monkeypatch.setenv("SERVIN_SIGNATURE_FORMATS", "tuf")

    # the repository owner moves its targets key into trustkit (migration) ...
    store = KeyStore(Settings.from_env(trust_dir=passphrase_env))
    store.import_private_pem(
        _notary_private_key(cli, "targets"),
        role="targets",
        gun=gun,
        pem_passphrase=NOTARY_ENV["NOTARY_TARGETS_PASSPHRASE"],
    )
    # ... and adds a signer with a key trustkit made
    code, out, err = _run(capsys, "trust", "key", "generate", "carol", "--dir", str(tmp_path))
    assert code == 0, err
    carol = load_public_key((tmp_path / "carol.pub").read_bytes())
    carol_id = notary_keyid(carol)
    code, _, err = _run(capsys, "trust", "signer", "add", "--key", str(tmp_path / "carol.pub"),
                        "carol", gun)  # fmt: skip
    assert code == 0, err
    listed = cli.run("delegation", "list", gun)
    assert "targets/carol" in listed and "targets/releases" in listed and carol_id in listed

    # the push path's plan (judged by policy before anything is signed) names carol's key
    from trustkit.collections import list_signed_tags, planned_signer_identities
    from trustkit.services import Services

    with Services(Settings.from_env()) as services:
        [plan] = planned_signer_identities(services, gun)
        assert (plan.name, plan.role, plan.keyids) == ("carol", "targets/carol", (carol_id,))
        assert [t.tag for t in list_signed_tags(services, gun)] == ["cli-tag"]

    # carol signs; the notary CLI sees the tag in releases
    code, out, err = _run(capsys, "trust", "sign", f"{gun}:v1", "--digest", f"sha256:{D2}",
                          "--size", "3")  # fmt: skip
    assert code == 0, err
    assert D2 in cli.run("lookup", gun, "v1")
    assert "v1" in cli.run("list", gun, "-r", "targets/releases")

    # renew: the roles this key store signs get new versions; the server renews the rest
    code, out, err = _run(capsys, "trust", "renew", gun)
    assert code == 0, err
    assert "targets/carol" in out and "targets/releases" in out and "targets," in out
    assert D2 in cli.run("lookup", gun, "v1")

    # the CLI's own tag is seen by trustkit, and so is a tag the CLI signs next
    code, out, err = _run(capsys, "trust", "verify", f"{gun}:cli-tag")
    assert (code, out.strip()) == (0, f"sha256:{D1}"), err
    cli.run("addhash", "-p", gun, "cli-tag-2", "5", "--sha256", D3)
    code, out, _ = _run(capsys, "trust", "verify", f"{gun}:cli-tag-2")
    assert (code, out.strip()) == (0, f"sha256:{D3}")

    # revoke: gone for both
    code, _, err = _run(capsys, "trust", "revoke", f"{gun}:v1")
    assert code == 0, err
    assert "v1" not in cli.run("list", gun, "-r", "targets/releases", check=False)
    code, _, _ = _run(capsys, "trust", "verify", f"{gun}:v1")
    assert code == 1

    # signer remove: the delegation is gone from notary's view
    code, _, err = _run(capsys, "trust", "signer", "remove", "carol", gun, "--force")
    assert code == 0, err
    assert "targets/carol" not in cli.run("delegation", "list", gun)
    code, out, err = _run(capsys, "trust", "verify", f"{gun}:cli-tag")
    assert (code, out.strip()) == (0, f"sha256:{D1}"), err

    # key rotate: the docker root key moves into trustkit, which rotates the repository key;
    # notary clients (the one that cached the old root, and a fresh one) follow the new root
    store.import_private_pem(
        _notary_private_key(cli, "root"),
        role="root",
        pem_passphrase=NOTARY_ENV["NOTARY_ROOT_PASSPHRASE"],
    )
    code, out, err = _run(capsys, "trust", "key", "rotate", gun)
    assert code == 0, err
    new_targets = out.strip()
    fresh = NotaryCLI(notary_server.url, tmp_path / "fresh-notary")
    import json
    import urllib.request

    with urllib.request.urlopen(f"{notary_server.url}/v2/{gun}/_trust/tuf/root.json") as got:
        root = json.loads(got.read())["signed"]
    assert root["roles"]["targets"]["keyids"] == [new_targets]  # notary's id for the new key
    assert D1 in fresh.run("lookup", gun, "cli-tag")
    assert D1 in cli.run("lookup", gun, "cli-tag")
    code, _, err = _run(capsys, "trust", "sign", f"{gun}:after-rotate", "--digest",
                        f"sha256:{D3}", "--size", "5")  # fmt: skip
    assert code == 0, err
    assert D3 in fresh.run("lookup", gun, "after-rotate")
    code, out, err = _run(capsys, "trust", "verify", f"{gun}:after-rotate")
    assert (code, out.strip()) == (0, f"sha256:{D3}"), err
