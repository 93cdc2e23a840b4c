"""``trust migrate``: a collection moves from the local directory into the registry, verified
before and after; a fresh client then verifies every tag from the registry alone; twice changes
nothing; a dry run copies nothing; a tampered source is refused before anything is copied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.registry import Registry, use_registry
from fixtures.trust import digest_for

from trustkit.cli import cli
from trustkit.collections import add_signer, sign_tag, verify_tag
from trustkit.config import Settings
from trustkit.errors import ConflictError, TrustkitError, UntrustedError
from trustkit.keys import KeyStore
from trustkit.pipeline.migrate import migrate
from trustkit.refs import parse
from trustkit.services import Services
from trustkit.stores import LocalDirStore, escape_gun, open_store

pytestmark = pytest.mark.registry

REGISTRY_STORE = "registry://?settle=0.05"
TAGS = ["v1", "v2", "latest"]


@pytest.fixture
def local_collection(
    settings: Settings, registry: Registry, repo_name: str
) -> tuple[Settings, str]:
    """A collection signed into the local directory, for an image in ``registry``."""
    local = settings.with_changes(trust_server="local")
    use_registry(local, registry)
    keystore = KeyStore(local)
    alice = keystore.generate(role="delegation", name="alice")
    gun = f"{registry.host}/{repo_name}"
    add_signer(local, gun, "alice", [alice.public_key], keystore=keystore)
    for tag in TAGS:
        sign_tag(local, parse(f"{gun}:{tag}"), digest=digest_for(tag), size=7, keystore=keystore)
    return local, gun


def test_migrate_local_to_registry_then_verify_from_a_fresh_client(
    local_collection: tuple[Settings, str], tmp_path: Path
) -> None:
    local, gun = local_collection
    services = Services(local)
    report = migrate(services, gun, "local", REGISTRY_STORE, dry_run=False)
    assert report.action == "copied"
    assert report.tags == {tag: digest_for(tag) for tag in TAGS}
    fresh = local.with_changes(trust_dir=tmp_path / "fresh", trust_server=REGISTRY_STORE)
    for tag in TAGS:
        target = verify_tag(fresh, parse(f"{gun}:{tag}"))
        assert (target.digest, target.signers) == (digest_for(tag), ("alice",))
    # verbatim: the same signed bytes in both stores
    source, dest = LocalDirStore(local.local_server_dir), open_store(REGISTRY_STORE)
    assert dest.read(gun, "timestamp", None, limit=1 << 16) == source.read(
        gun, "timestamp", None, limit=1 << 16
    )
    assert dest.root_version(gun) == source.root_version(gun)
    # twice: nothing changes
    generation = dest.generation(gun)
    again = migrate(services, gun, "local", REGISTRY_STORE, dry_run=False)
    assert again.action == "unchanged" and dest.generation(gun) == generation


def test_dry_run_copies_nothing(local_collection: tuple[Settings, str]) -> None:
    local, gun = local_collection
    report = migrate(Services(local), gun, "local", REGISTRY_STORE, dry_run=True)
    assert report.action == "would copy" and len(report.tags) == len(TAGS)
    assert not open_store(REGISTRY_STORE).exists(gun)


def test_a_tampered_source_is_refused_before_copying(
    local_collection: tuple[Settings, str],
) -> None:
    local, gun = local_collection
    directory = local.local_server_dir / escape_gun(gun)
    releases = max(
        directory.glob("*.targets%2Freleases.json"), key=lambda p: int(p.name.split(".")[0])
    )
    releases.write_bytes(releases.read_bytes().replace(digest_for("v1")[7:].encode(), b"f" * 64))
    with pytest.raises(UntrustedError):
        migrate(Services(local), gun, "local", REGISTRY_STORE, dry_run=False)
    assert not open_store(REGISTRY_STORE).exists(gun)


def test_a_destination_holding_other_trust_data_is_refused(
    local_collection: tuple[Settings, str], tmp_path: Path
) -> None:
    local, gun = local_collection
    migrate(Services(local), gun, "local", REGISTRY_STORE, dry_run=False)
    # the local collection moves on; the registry copy is now another set
    sign_tag(local, parse(f"{gun}:v9"), digest=digest_for("v9"), size=7, keystore=KeyStore(local))
    with pytest.raises(ConflictError):
        migrate(Services(local), gun, "local", REGISTRY_STORE, dry_run=False)


def test_cli_migrate(
    local_collection: tuple[Settings, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, gun = local_collection
    monkeypatch.setenv("SERVIN_TRUST_DIR", str(local.trust_dir))
    monkeypatch.setenv("SERVIN_CONFIG", str(local.effective_config_dir))
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", REGISTRY_STORE)
    runner = CliRunner()
    dry = runner.invoke(cli, ["trust", "migrate", gun, "--from", "local", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would copy (3 signed tags" in dry.output
    done = runner.invoke(cli, ["trust", "migrate", gun, "--from", "local", "--json"])
    assert done.exit_code == 0, done.output
    (report,) = json.loads(done.output)
    assert report["action"] == "copied" and report["tags"]["v2"] == digest_for("v2")
    again = runner.invoke(cli, ["trust", "migrate", gun, "--from", "local"])
    assert again.exit_code == 0 and "unchanged" in again.output
    verified = runner.invoke(cli, ["trust", "verify", f"{gun}:latest"])
    assert verified.exit_code == 0 and verified.output.strip() == digest_for("latest")
    same = runner.invoke(cli, ["trust", "migrate", gun, "--from", REGISTRY_STORE])
    assert same.exit_code != 0


def test_migrate_needs_a_source_collection(settings: Settings, registry: Registry) -> None:
    with pytest.raises(TrustkitError, match="no trust data"):
        migrate(
            Services(settings), f"{registry.host}/t/none", "local", REGISTRY_STORE, dry_run=True
        )
