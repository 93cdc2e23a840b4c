"""Delegation layouts, failures mapped by exception type, optimistic writers, module seams."""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from fixtures.trust import TrustedRepo, digest_for

from trustkit.collections import Expiries, add_signer, list_signed_tags, sign_tag, verify_tag
from trustkit.collections._tuf import DelegatedRole, Delegations, Metadata, MetaFile, TargetFile
from trustkit.collections.client import forget_sessions
from trustkit.collections.layouts import DCT, layout_for
from trustkit.collections.model import DEFAULT_EXPIRIES, RELEASES, TARGETS
from trustkit.collections.repository import Collection
from trustkit.config import Settings
from trustkit.errors import (
    BelowThresholdError,
    ConflictError,
    ExpiredMetadataError,
    FailureKind,
    SignatureError,
)
from trustkit.keys import KeyRecord, KeyStore
from trustkit.services import Services
from trustkit.stores import LocalDirStore, MetadataFile

COLLECTIONS = Path(__file__).parent.parent / "trustkit" / "collections"


def _delegations(*roles: str) -> Delegations:
    return Delegations(
        keys={},
        roles={name: DelegatedRole(name, [f"k-{name}"], 1, False, paths=["*"]) for name in roles},
    )


# --- the DCT layout -----------------------------------------------------------------------
def test_dct_reader_looks_in_releases_first_then_targets() -> None:
    assert layout_for(None) is DCT
    assert DCT.lookup_roles(None, "v1") == [TARGETS]
    both = _delegations(RELEASES, "targets/alice")
    assert DCT.lookup_roles(both, "v1") == [RELEASES, TARGETS]
    assert DCT.listing_roles(both) == [RELEASES, TARGETS]
    # a tag only a signer's own role records is not trusted for pull: never looked up there
    assert "targets/alice" not in DCT.lookup_roles(both, "v1")
    assert DCT.lookup_roles(_delegations("targets/alice"), "v1") == [TARGETS]


def test_dct_writer_and_signer_records() -> None:
    both = _delegations(RELEASES, "targets/alice", "targets/bob")
    holds_alice = {"k-targets/alice", f"k-{RELEASES}"}

    def can_sign(role: str) -> bool:
        return bool(set(both.roles[role].keyids) & holds_alice)  # type: ignore[index]

    assert DCT.write_roles(both, "v1", can_sign) == [RELEASES, "targets/alice"]
    assert DCT.write_roles(None, "v1", can_sign) == [TARGETS]
    assert DCT.write_roles(both, "v1", lambda role: False) == []
    assert DCT.signer_roles(both) == {"alice": "targets/alice", "bob": "targets/bob"}
    assert DCT.record_roles(both, "v1") == {"alice": "targets/alice", "bob": "targets/bob"}
    assert DCT.release_roles(both) == [RELEASES]
    assert (DCT.signer_of(RELEASES), DCT.signer_of(TARGETS)) == (None, None)


def test_dct_signer_removal_drops_only_its_own_keys(
    trust_keystore: KeyStore, trust_signer_key: KeyRecord
) -> None:
    bob = trust_keystore.generate(role="delegation", name="bob")
    delegations = Delegations(keys={}, roles={})
    DCT.add_signer(delegations, "alice", [trust_signer_key.public_key], None)
    DCT.add_signer(delegations, "bob", [bob.public_key, trust_signer_key.public_key], 2)
    assert list(delegations.roles or {}) == [RELEASES, "targets/alice", "targets/bob"]
    removal = DCT.remove_signer(delegations, "bob", force=False)
    # alice still holds the shared key: only bob's own key leaves releases
    assert removal.leaving_keyids == [bob.keyid]
    assert removal.release_roles == [RELEASES]
    assert (delegations.roles or {})[RELEASES].keyids == [trust_signer_key.keyid]
    assert set(delegations.keys) == {trust_signer_key.keyid}


# --- failures by exception type, never by message text ------------------------------------
def _forge_releases(repo: TrustedRepo, sign_with: Sequence[str]) -> None:
    """A server publishing a releases role signed by ``sign_with`` (with valid snapshot and
    timestamp, as a compromised server could)."""
    store = LocalDirStore(repo.settings.local_server_dir)

    class Inject(LocalDirStore):
        def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
            return super().publish(gun, [forged, *files], expected=expected)

    with store.writing(repo.gun):
        collection = Collection.load(store, repo.gun)
        assert collection is not None
        published = collection.delegated(RELEASES)
        assert published is not None
        md = Metadata.from_bytes(published.to_bytes())
        md.signed.version += 1
        md.signed.targets["evil"] = TargetFile(1, {"sha256": "e" * 64}, "evil")
        md.signatures.clear()
        for keyid in sign_with:
            md.sign(repo.keystore.signer(keyid), append=True)
        data = md.to_bytes()
        forged = MetadataFile(RELEASES, md.signed.version, data)
        collection.snapshot.signed.meta[f"{RELEASES}.json"] = MetaFile.from_data(
            md.signed.version, data, ["sha256"]
        )
        injector = Inject(repo.settings.local_server_dir)
        collection.publish(repo.keystore, DEFAULT_EXPIRIES, injector)
    forget_sessions()


def test_below_threshold_is_its_own_kind(trusted_repo: TrustedRepo) -> None:
    ks = trusted_repo.keystore
    bob = ks.generate(role="delegation", name="bob")
    add_signer(
        trusted_repo.settings, trusted_repo.gun, "bob", [bob.public_key], threshold=2, keystore=ks
    )
    trusted_repo.sign("v1")
    _forge_releases(trusted_repo, [trusted_repo.signer.keyid])
    with pytest.raises(BelowThresholdError) as caught:
        verify_tag(trusted_repo.settings, trusted_repo.tag("evil"))
    assert caught.value.kind is FailureKind.BELOW_THRESHOLD


def test_unknown_key_is_a_bad_signature_not_below_threshold(trusted_repo: TrustedRepo) -> None:
    trusted_repo.sign("v1")
    mallory = trusted_repo.keystore.generate(role="delegation", name="mallory")
    _forge_releases(trusted_repo, [mallory.keyid])
    with pytest.raises(SignatureError) as caught:
        verify_tag(trusted_repo.settings, trusted_repo.tag("evil"))
    assert not isinstance(caught.value, BelowThresholdError)
    assert caught.value.kind is FailureKind.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("expiries", "role"),
    [
        (Expiries(timestamp=timedelta(seconds=-1)), "timestamp"),
        (Expiries(snapshot=timedelta(seconds=-1)), "snapshot"),
        (Expiries(delegation=timedelta(seconds=-1)), RELEASES),
    ],
)
def test_expired_role_named_without_reading_python_tufs_message(
    trusted_repo: TrustedRepo,
    fresh_trust_client: Callable[[str], Settings],
    monkeypatch: pytest.MonkeyPatch,
    expiries: Expiries,
    role: str,
) -> None:
    from tuf.api import exceptions as tuf_exc

    sign_tag(
        trusted_repo.settings,
        trusted_repo.tag("v1"),
        digest=digest_for("v1"),
        size=1,
        keystore=trusted_repo.keystore,
        expiries=expiries,
    )
    # python-tuf's wording is not an interface: blank it, the role must still be right
    monkeypatch.setattr(tuf_exc.ExpiredMetadataError, "__str__", lambda self: "")
    with pytest.raises(ExpiredMetadataError, match=f"^{role} metadata of .* expired"):
        verify_tag(fresh_trust_client("c"), trusted_repo.tag("v1"))


def test_no_message_parsing_left_in_the_client() -> None:
    source = (COLLECTIONS / "client.py").read_text()
    assert "_role_in" not in source and "_ROLE_IN_MESSAGE" not in source


# --- optimistic writers -------------------------------------------------------------------
def test_a_writer_that_lost_the_race_reapplies_its_change(trusted_repo: TrustedRepo) -> None:
    """Another writer publishes between this writer's load and publish (a store without a
    lock): the ConflictError is answered by reloading and re-applying, and nothing is lost."""
    local = LocalDirStore(trusted_repo.settings.local_server_dir)
    conflicts: list[str] = []

    class Racy(LocalDirStore):
        def __init__(self) -> None:
            super().__init__(trusted_repo.settings.local_server_dir)
            self.raced = False

        def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
            if not self.raced:
                self.raced = True  # the other writer gets in first, through its own store
                sign_tag(
                    Services(trusted_repo.settings, store=local),
                    trusted_repo.tag("other"),
                    digest=digest_for("other"),
                    size=5,
                    keystore=trusted_repo.keystore,
                )
            try:
                return super().publish(gun, files, expected=expected)
            except ConflictError as exc:
                conflicts.append(str(exc))
                raise

        def writing(self, gun: str):  # type: ignore[no-untyped-def]
            from contextlib import nullcontext

            return nullcontext()  # no lock: correctness must come from publish(expected=)

    services = Services(trusted_repo.settings, store=Racy())
    sign_tag(
        services,
        trusted_repo.tag("mine"),
        digest=digest_for("mine"),
        size=4,
        keystore=trusted_repo.keystore,
    )
    assert len(conflicts) == 1
    tags = {t.tag: t.digest for t in list_signed_tags(trusted_repo.settings, trusted_repo.gun)}
    assert tags == {"mine": digest_for("mine"), "other": digest_for("other")}


# --- seams --------------------------------------------------------------------------------
def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, lazily inside functions and under TYPE_CHECKING too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_cosigning_does_not_import_the_engine() -> None:
    assert "trustkit.collections.engine" not in _imported_modules(COLLECTIONS / "cosigning.py")
    for module in ("layouts.py", "repository.py", "client.py", "_retry.py"):
        imported = _imported_modules(COLLECTIONS / module)
        assert not imported & {"trustkit.collections.engine", "trustkit.collections.cosigning"}


def test_engine_takes_collaborators_from_services() -> None:
    for module in ("engine.py", "cosigning.py"):
        source = (COLLECTIONS / module).read_text()
        assert "open_store(" not in source and "KeyStore(" not in source
