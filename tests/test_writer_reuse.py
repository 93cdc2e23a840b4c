"""The publish path's shortcuts keep its guarantees.

- Metadata files are written around the canonical bytes their signatures cover (encoded once):
  each file parses to exactly what python-tuf's own serializer writes, and verifies.
- A process keeps the set it just published for its next sign of the same collection, but only
  while the store serves every file of that set byte for byte: another writer's publish, a
  rollback or a tampered file means a full load (which refuses what does not verify), and a
  change of delegations is never kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.trust import TrustedRepo, digest_for

from trustkit.collections import add_signer, sign_tag, verify_tag
from trustkit.collections import repository as repository_module
from trustkit.collections.client import forget_sessions
from trustkit.collections.engine import use_bins
from trustkit.collections.repository import Collection, forget_published
from trustkit.config import Settings
from trustkit.errors import UntrustedError
from trustkit.keys import KeyStore
from trustkit.stores import LocalDirStore, escape_gun


@pytest.fixture(autouse=True)
def _nothing_kept() -> None:
    forget_published()


class _CountingParses:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kinds: list[str] = []
        real = repository_module._parse

        def counting(raw: bytes, kind: type) -> object:
            self.kinds.append(kind.type)  # type: ignore[attr-defined]
            return real(raw, kind)

        monkeypatch.setattr(repository_module, "_parse", counting)


def _collection_dir(settings: Settings, gun: str) -> Path:
    return settings.local_server_dir / escape_gun(gun)


def _local(settings: Settings) -> Settings:
    return settings.with_changes(trust_server="local")


@pytest.fixture
def local_repo(trusted_repo: TrustedRepo) -> TrustedRepo:
    settings = _local(trusted_repo.settings)
    add_signer(
        settings,
        trusted_repo.gun,
        "alice",
        [trusted_repo.signer.public_key],
        keystore=trusted_repo.keystore,
    )
    return TrustedRepo(settings, trusted_repo.keystore, trusted_repo.ref, trusted_repo.signer)


@pytest.mark.parametrize("layout", ["dct", "bins"])
def test_written_files_parse_as_tufs_serializer_writes_them(
    local_repo: TrustedRepo, layout: str
) -> None:
    if layout == "bins":
        use_bins(local_repo.settings, local_repo.gun, keystore=local_repo.keystore)
    local_repo.sign("v1")
    store = LocalDirStore(local_repo.settings.local_server_dir)
    collection = Collection.load(store, local_repo.gun)
    assert collection is not None
    directory = _collection_dir(local_repo.settings, local_repo.gun)
    files = sorted(directory.glob("*.json"))
    assert len(files) > 4
    for path in files:
        if path.name == "current.json":
            continue
        raw = path.read_bytes()
        document = json.loads(raw)  # every file is plain JSON (PEM newlines escaped)
        md = repository_module.Metadata.from_bytes(raw)
        assert json.loads(md.to_bytes(repository_module._SERIALIZER)) == document, path.name
    forget_sessions()
    assert verify_tag(local_repo.settings, local_repo.tag("v1")).digest == digest_for("v1")


def test_a_second_sign_reuses_the_set_it_published(
    local_repo: TrustedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_bins(local_repo.settings, local_repo.gun, keystore=local_repo.keystore)
    local_repo.sign("v1")
    parses = _CountingParses(monkeypatch)
    local_repo.sign("v2")
    assert "snapshot" not in parses.kinds and "root" not in parses.kinds, parses.kinds
    forget_sessions()
    for tag in ("v1", "v2"):
        assert verify_tag(local_repo.settings, local_repo.tag(tag)).digest == digest_for(tag)


def test_another_writers_publish_is_loaded_not_overwritten(
    local_repo: TrustedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_repo.sign("v1")  # this process keeps its set
    ours = dict(repository_module._LAST_PUBLISHED._sets)
    assert ours
    # another machine (another process: nothing kept) signs v2 into the same store
    forget_published()
    other = KeyStore(local_repo.settings)
    sign_tag(
        local_repo.settings, local_repo.tag("v2"), digest=digest_for("v2"), size=1, keystore=other
    )
    repository_module._LAST_PUBLISHED._sets.update(ours)  # this process still holds v1's set
    parses = _CountingParses(monkeypatch)
    local_repo.sign("v3")
    assert "snapshot" in parses.kinds  # the kept set was stale: a full load
    forget_sessions()
    for tag in ("v1", "v2", "v3"):
        assert verify_tag(local_repo.settings, local_repo.tag(tag)).digest == digest_for(tag)


def test_a_file_tampered_between_two_signs_is_refused(local_repo: TrustedRepo) -> None:
    local_repo.sign("v1")  # this process keeps its set, releases included
    assert repository_module._LAST_PUBLISHED._sets
    directory = _collection_dir(local_repo.settings, local_repo.gun)
    head = (directory / "current.json").read_bytes()
    releases = sorted(directory.glob("*.targets%2Freleases.json"))[-1]
    document = json.loads(releases.read_bytes())
    document["signed"]["targets"]["v1"]["length"] += 1  # an attacker edits a signed tag in place
    releases.write_bytes(json.dumps(document, separators=(",", ":")).encode())
    assert (directory / "current.json").read_bytes() == head  # same generation
    with pytest.raises(UntrustedError):
        local_repo.sign("v2")  # the kept set no longer matches: a full load refuses


def test_a_delegation_change_is_never_kept(local_repo: TrustedRepo) -> None:
    local_repo.sign("v1")
    bob = local_repo.keystore.generate(role="delegation", name="bob")
    add_signer(
        local_repo.settings,
        local_repo.gun,
        "bob",
        [bob.public_key],
        keystore=local_repo.keystore,
    )
    assert not repository_module._LAST_PUBLISHED._sets
