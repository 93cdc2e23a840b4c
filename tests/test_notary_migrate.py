"""Leaving Notary: a collection with 1,000 tags and two signers on a real notary-server moves
into a TUF store; a fresh client verifies every tag there; migrating again changes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fixtures.notary import NOTARY_ENV, NotaryCLI, NotaryServer, needs_notary
from fixtures.registry import Registry, use_registry

from trustkit.collections import list_signed_tags
from trustkit.config import Settings
from trustkit.keys import KeyStore
from trustkit.notary import writer
from trustkit.pipeline.migrate_notary import _OnlyKeys, migrate_from_notary
from trustkit.services import Services

pytestmark = [pytest.mark.peer, needs_notary]

TAGS = 1000
REGISTRY_STORE = "registry://?settle=0.05"


def _digest(i: int) -> str:
    return "sha256:" + hashlib.sha256(f"image {i}".encode()).hexdigest()


def _notary_private_key(cli: NotaryCLI, role: str) -> bytes:
    for path in (cli.trust_dir / "private").glob("*.key"):
        if f"role: {role}".encode() in path.read_bytes():
            return path.read_bytes()
    raise AssertionError(f"no {role} key")


@pytest.mark.registry
def test_migrate_1000_tags_two_signers_to_the_registry_store(
    notary_server: NotaryServer,
    registry: Registry,
    repo_name: str,
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The usual way off DCT: into the image's own registry (the registry store)."""
    gun = f"{registry.host}/{repo_name}"
    cli = NotaryCLI(notary_server.url, tmp_path / "notary")
    cli.run("init", "-p", gun)
    cli.run("key", "rotate", gun, "snapshot", "-r")
    cli.run("addhash", "-p", gun, "admin-only", "7", "--sha256", "ab" * 32)
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", notary_server.url)
    settings = Settings.from_env()
    keys = KeyStore(settings)
    keys.import_private_pem(
        _notary_private_key(cli, "targets"),
        role="targets",
        gun=gun,
        pem_passphrase=NOTARY_ENV["NOTARY_TARGETS_PASSPHRASE"],
    )
    alice = keys.generate(role="delegation", name="alice")
    bob = keys.generate(role="delegation", name="bob")
    with Services(settings, keys=keys) as services:
        writer.add_signer(services, gun, keys, "alice", [alice.public_key])
        writer.add_signer(services, gun, keys, "bob", [bob.public_key])
        # alice signs every tag, bob the even ones: two signers, as in a real team
        everything = {f"t{i}": (_digest(i), 100 + i) for i in range(TAGS)}
        writer.sign_tags(services, gun, _OnlyKeys(keys, [alice.keyid]), everything)
        evens = {t: v for t, v in everything.items() if int(t[1:]) % 2 == 0}
        writer.sign_tags(services, gun, _OnlyKeys(keys, [bob.keyid]), evens)
    assert "t999" in cli.run("list", gun)  # the notary CLI agrees the collection is sound

    use_registry(settings, registry)
    dest = REGISTRY_STORE
    with Services(Settings.from_env(), keys=keys) as services:
        dry = migrate_from_notary(services, gun, notary_server.url, dest, dry_run=True)
        assert dry.action == "would copy" and len(dry.carried) == TAGS
        assert not services.store_at(dest).exists(gun)  # a dry run writes nothing

        report = migrate_from_notary(services, gun, notary_server.url, dest, dry_run=False)
    assert report.action == "copied"
    assert len(report.carried) == TAGS
    assert report.not_carried == {
        "admin-only": "signed only by the repository key (no signer to carry it)"
    }
    assert report.signers["alice"]["keyids"] == [alice.keyid]
    assert report.signers["alice"]["notary_keyids"] == [writer.notary_keyid(alice.public_key)]
    assert report.carried["t2"]["by"] == ["alice", "bob"]
    assert report.carried["t3"]["by"] == ["alice"]

    # a fresh client (another trust dir) verifies every tag from the new store
    # a fresh client shares only the registry with the migrating machine
    fresh_settings = Settings.from_env(trust_dir=tmp_path / "fresh").with_changes(trust_server=dest)
    with Services(fresh_settings) as fresh:
        tags = {t.tag: t for t in list_signed_tags(fresh, gun)}
    assert len(tags) == TAGS
    for i in range(TAGS):
        tag = tags[f"t{i}"]
        assert (tag.digest, tag.size) == (_digest(i), 100 + i)
    assert set(tags["t2"].signers) == {"alice", "bob"} and tags["t3"].signers == ("alice",)

    # idempotent: a second run finds everything there
    with Services(Settings.from_env(), keys=keys) as services:
        again = migrate_from_notary(services, gun, notary_server.url, dest, dry_run=False)
    assert again.action == "unchanged" and len(again.carried) == TAGS
    with Services(Settings.from_env()) as services:
        assert services.store_at(dest).root_version(gun) == 1


def _keyid_of_pem(pem: Path) -> str:
    import json

    body = "".join(
        line
        for line in pem.read_text().splitlines()
        if line and not line.startswith("-----") and ":" not in line
    )
    doc = {"keytype": "ecdsa", "keyval": {"private": None, "public": body}}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def test_leaving_dct_from_the_command_line(
    notary_server: NotaryServer,
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/dct-migration.md, step by step: import the signer's docker/notary key with its own
    passphrase, migrate, switch the environment, verify from a fresh client."""
    import json

    from trustkit.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            main(list(argv))
        out = capsys.readouterr()
        return int(exited.value.code or 0), out.out, out.err

    gun = "localhost:5000/dct/app"
    digest = hashlib.sha256(b"dct app v1").hexdigest()
    cli = NotaryCLI(notary_server.url, tmp_path / "docker-trust")
    cli.run("init", "-p", gun)
    cli.run("key", "generate", "ecdsa", "--role", "alice", "-o", str(tmp_path / "alice"))
    alice_id = _keyid_of_pem(tmp_path / "alice.pem")
    with_path = tmp_path / "alice-key-path.pem"  # notary imports a key file with a path header
    lines = (tmp_path / "alice-key.pem").read_text().splitlines(keepends=True)
    with_path.write_text(lines[0] + f"path: {alice_id}\n" + "".join(lines[1:]))
    cli.run("key", "import", str(with_path))
    for role in ("targets/releases", "targets/alice"):
        cli.run("delegation", "add", "-p", gun, role, str(tmp_path / "alice.pem"), "--all-paths")
    cli.run("addhash", "-p", gun, "v1", "9", "--sha256", digest, "-r", "targets/releases",
            "-r", "targets/alice")  # fmt: skip

    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", notary_server.url)
    # the key file keeps notary's passphrase; the key store keeps trustkit's
    monkeypatch.setenv(
        "SERVIN_CONTENT_TRUST_IMPORT_PASSPHRASE", NOTARY_ENV["NOTARY_DELEGATION_PASSPHRASE"]
    )
    code, out, err = run("trust", "key", "load", str(tmp_path / "alice-key.pem"))
    assert code == 0, err
    assert out.strip() == alice_id  # the id notary and docker show
    assert "as delegation key alice" in err  # named by the file's own role header
    code, out, _ = run("trust", "key", "list", "--json")
    [listed] = [k for k in json.loads(out) if k["name"] == "alice"]
    assert listed["notary_keyid"] == alice_id and listed["keyid"] != alice_id

    dest = f"file://{tmp_path / 'tuf'}"
    code, out, err = run("trust", "migrate", gun, "--from", notary_server.url, "--to", dest,
                         "--json")  # fmt: skip
    assert code == 0, err
    [report] = json.loads(out)
    assert report["action"] == "copied"
    assert report["carried"] == {"v1": {"digest": f"sha256:{digest}", "size": 9, "by": ["alice"]}}
    assert report["signers"]["alice"]["notary_keyids"] == [alice_id]
    saved = passphrase_env / "migrations" / "localhost%3A5000%2Fdct%2Fapp.json"
    assert json.loads(saved.read_bytes())["carried"] == report["carried"]

    # switch the environment; a fresh client trusts the new root on first use
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", dest)
    monkeypatch.setenv("SERVIN_TRUST_DIR", str(tmp_path / "fresh-client"))
    code, out, err = run("trust", "verify", f"{gun}:v1")
    assert (code, out.strip()) == (0, f"sha256:{digest}"), err
    # idempotent
    code, out, err = run("trust", "migrate", gun, "--from", notary_server.url, "--to", dest)
    assert code == 0 and out.startswith(f"{gun}: unchanged 1 signed tags"), err
