"""Attacks on stored trust data, each refused with a clear message (real stores, real client).

Every test runs against every TUF store kind (``TUF_STORE_KINDS``): the attacker works through the
store's ``Adversary`` (tests/fixtures/stores.py), or, as a compromised server holding the online
snapshot and timestamp keys, publishes forged roles through the store's own publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import pytest
from fixtures.stores import TUF_STORE_KINDS, Adversary, adversary_for, settings_on_store_kind
from fixtures.trust import TrustedRepo, digest_for

from trustkit.collections import (
    Expiries,
    add_signer,
    remove_signer,
    rotate_key,
    sign_tag,
    verify_tag,
)
from trustkit.collections._tuf import Metadata, MetaFile, TargetFile
from trustkit.collections.client import forget_sessions
from trustkit.collections.model import DEFAULT_EXPIRIES
from trustkit.collections.repository import Collection
from trustkit.config import Settings
from trustkit.errors import (
    DigestMismatchError,
    ExpiredMetadataError,
    FailureKind,
    RollbackError,
    SignatureError,
    UntrustedError,
)
from trustkit.keys import KeyStore
from trustkit.refs import parse
from trustkit.stores import (
    MetadataFile,
    MetadataStore,
    PendingChanges,
    StoreCapabilities,
    metadata_filename,
    open_store,
)

RELEASES = "targets/releases"


@pytest.fixture(params=TUF_STORE_KINDS)
def settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    """The base settings, with the trust data in a fresh store of each TUF kind (these cases
    edit TUF metadata; Notary's are in tests/test_notary_verifier.py)."""
    return settings_on_store_kind(settings, request.param, tmp_path)


@pytest.fixture
def fresh_trust_client(settings: Settings, tmp_path: Path) -> Callable[[str], Settings]:
    """Another machine: an empty trust dir (so verification starts from TOFU), the same store."""

    def make(name: str = "client") -> Settings:
        return settings.with_changes(trust_dir=tmp_path / name)

    return make


def adversary(repo: TrustedRepo) -> Adversary:
    return adversary_for(repo.settings)


def current(repo: TrustedRepo, role: str) -> bytes:
    """The bytes of ``role`` in the current set, as the store serves them."""
    return adversary(repo).save(repo.gun).current(role)


class _Injecting(MetadataStore):
    """The store as a compromised server uses it: forged files go out with the snapshot and
    timestamp the engine signs."""

    def __init__(self, store: MetadataStore, extra: list[MetadataFile]) -> None:
        self.store = store
        self.extra = extra
        self.description = store.description

    @property
    def capabilities(self) -> StoreCapabilities:
        return self.store.capabilities

    @property
    def pending(self) -> PendingChanges:
        return self.store.pending

    def exists(self, gun: str) -> bool:
        return self.store.exists(gun)

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        return self.store.read(gun, role, version, limit=limit)

    def root_version(self, gun: str) -> int:
        return self.store.root_version(gun)

    def generation(self, gun: str) -> str | None:
        return self.store.generation(gun)

    def writing(self, gun: str) -> AbstractContextManager[None]:
        return self.store.writing(gun)

    def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
        return self.store.publish(gun, [*self.extra, *files], expected=expected)


def forge(
    repo: TrustedRepo,
    make: Callable[[Collection], dict[str, Metadata]],
) -> None:
    """A compromised server: publish forged roles with valid snapshot and timestamp signatures."""
    store = open_store(repo.settings.trust_store_url)
    with store.writing(repo.gun):
        collection = Collection.load(store, repo.gun)
        assert collection is not None
        extra = []
        for role, md in make(collection).items():
            data = md.to_bytes()
            extra.append(MetadataFile(role, md.signed.version, data))
            if role != "root":
                collection.snapshot.signed.meta[f"{role}.json"] = MetaFile.from_data(
                    md.signed.version, data, ["sha256"]
                )
        collection.publish(repo.keystore, DEFAULT_EXPIRIES, _Injecting(store, extra))


def forged_releases(collection: Collection, signer_ids: list[str], keystore: KeyStore) -> Metadata:
    """releases with an extra tag 'evil', signed only by ``signer_ids``."""
    published = collection.delegated(RELEASES)
    assert published is not None
    md = Metadata.from_bytes(published.to_bytes())
    md.signed.version += 1
    md.signed.targets["evil"] = TargetFile(1, {"sha256": "e" * 64}, "evil")
    md.signatures.clear()
    for keyid in signer_ids:
        md.sign(keystore.signer(keyid), append=True)
    return md


# --- rollback -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "expected"),
    [("sign", RollbackError), ("root", RollbackError), ("timestamp", UntrustedError)],
)
def test_rollback_of_whole_store(
    signed_repo: TrustedRepo, change: str, expected: type[Exception]
) -> None:
    backup = adversary(signed_repo).save(signed_repo.gun)
    if change == "sign":
        signed_repo.sign("v2")
    else:
        rotate_key(signed_repo.settings, signed_repo.gun, change, keystore=signed_repo.keystore)
    verify_tag(signed_repo.settings, signed_repo.tag("v1"))  # this client saw the newer set
    adversary(signed_repo).serve_old(signed_repo.gun, backup)
    forget_sessions()
    with pytest.raises(expected) as caught:
        verify_tag(signed_repo.settings, signed_repo.tag("v1"))
    if expected is RollbackError:
        assert "rollback" in str(caught.value)


def test_rollback_of_snapshot(signed_repo: TrustedRepo) -> None:
    signed_repo.sign("v2")  # snapshot version 3
    verify_tag(signed_repo.settings, signed_repo.tag("v1"))
    old_snapshot = Metadata.from_bytes(
        adversary(signed_repo).save(signed_repo.gun).files["1.snapshot.json"]
    )

    def make(collection: Collection) -> dict[str, Metadata]:
        collection.snapshot = old_snapshot  # the engine signs it as version 2 (current is 3)
        return {}

    forge(signed_repo, make)
    forget_sessions()
    with pytest.raises(RollbackError, match="rollback"):
        verify_tag(signed_repo.settings, signed_repo.tag("v1"))


@pytest.mark.parametrize("role", ["targets", RELEASES])
def test_rollback_of_targets_roles(signed_repo: TrustedRepo, role: str) -> None:
    bob = signed_repo.keystore.generate(role="delegation", name="bob")
    add_signer(
        signed_repo.settings,
        signed_repo.gun,
        "bob",
        [bob.public_key],
        keystore=signed_repo.keystore,
    )
    signed_repo.sign("v2")  # targets and releases now at version 2
    old_file = adversary(signed_repo).save(signed_repo.gun).files[metadata_filename(role, 1)]
    verify_tag(signed_repo.settings, signed_repo.tag("v2"))

    def make(collection: Collection) -> dict[str, Metadata]:
        collection.snapshot.signed.meta[f"{role}.json"] = MetaFile.from_data(
            1, old_file, ["sha256"]
        )
        return {}

    forge(signed_repo, make)
    forget_sessions()
    with pytest.raises(RollbackError):
        verify_tag(signed_repo.settings, signed_repo.tag("v2"))


# --- freeze -------------------------------------------------------------------------------
EXPIRED = timedelta(seconds=-1)


@pytest.mark.parametrize(
    ("expiries", "role"),
    [
        (Expiries(timestamp=EXPIRED), "timestamp"),
        (Expiries(snapshot=EXPIRED), "snapshot"),
        (Expiries(delegation=EXPIRED), RELEASES),
    ],
)
def test_expired_metadata_refused(
    trusted_repo: TrustedRepo,
    fresh_trust_client: Callable[[str], Settings],
    expiries: Expiries,
    role: str,
) -> None:
    sign_tag(
        trusted_repo.settings,
        trusted_repo.tag("v1"),
        digest=digest_for("v1"),
        size=1,
        keystore=trusted_repo.keystore,
        expiries=expiries,
    )
    with pytest.raises(ExpiredMetadataError, match=f"{role} metadata of .* expired.*freeze"):
        verify_tag(fresh_trust_client("c"), trusted_repo.tag("v1"))


def test_expired_top_level_targets(settings: Settings, trust_keystore: KeyStore) -> None:
    ref = parse("localhost:5000/frozen:v1")
    sign_tag(
        settings,
        ref,
        digest=digest_for("x"),
        size=1,
        keystore=trust_keystore,
        expiries=Expiries(targets=EXPIRED),
    )
    with pytest.raises(ExpiredMetadataError, match="targets metadata of localhost:5000/frozen"):
        verify_tag(settings, ref)


def test_timestamp_expires_under_a_warm_client(trusted_repo: TrustedRepo) -> None:
    sign_tag(
        trusted_repo.settings,
        trusted_repo.tag("v1"),
        digest=digest_for("v1"),
        size=1,
        keystore=trusted_repo.keystore,
        expiries=Expiries(timestamp=timedelta(seconds=2)),
    )
    assert verify_tag(trusted_repo.settings, trusted_repo.tag("v1")).tag == "v1"
    time.sleep(2.05)
    with pytest.raises(ExpiredMetadataError, match=r"timestamp metadata .* expired on \d{4}-"):
        verify_tag(trusted_repo.settings, trusted_repo.tag("v1"))


# --- mix-and-match and tampering ----------------------------------------------------------
@pytest.mark.parametrize("role", ["snapshot", RELEASES])
def test_hash_mismatch_refused(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings], role: str
) -> None:
    before = adversary(signed_repo).save(signed_repo.gun)
    signed_repo.sign("v2")
    # a valid older file in the newer set
    adversary(signed_repo).mix_and_match(signed_repo.gun, role, before)
    # ECDSA signatures vary in length, so the older file is refused either by its hash or, when
    # it happens to be longer, by the length the newer metadata recorded for it
    with pytest.raises(UntrustedError, match=r"mix-and-match|larger than the"):
        verify_tag(fresh_trust_client("c"), signed_repo.tag("v1"))


def test_version_mismatch_refused(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    old = current(signed_repo, RELEASES)

    def make(collection: Collection) -> dict[str, Metadata]:
        md = Metadata.from_bytes(old)
        md.signed.version = 7  # claims version 7 in the snapshot, the signed bytes say 1
        return {}

    signed_repo.sign("v2")

    def make_mismatch(collection: Collection) -> dict[str, Metadata]:
        collection.snapshot.signed.meta[f"{RELEASES}.json"] = MetaFile.from_data(7, old, ["sha256"])
        adversary(signed_repo).plant(signed_repo.gun, RELEASES, 7, old)
        return {}

    forge(signed_repo, make_mismatch)
    with pytest.raises(RollbackError, match="version"):
        verify_tag(fresh_trust_client("c"), signed_repo.tag("v1"))


def test_target_digest_edited_in_place(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    signed_hex = digest_for("v1").split(":")[1].encode()
    adversary(signed_repo).swap_bytes(signed_repo.gun, RELEASES, signed_hex, b"f" * 64)
    with pytest.raises(DigestMismatchError):
        verify_tag(fresh_trust_client("c"), signed_repo.tag("v1"))
    with pytest.raises(UntrustedError, match="refusing to write"):
        signed_repo.sign("v2")  # the writer does not build on tampered data either


def test_target_digest_edited_with_resigned_snapshot(signed_repo: TrustedRepo) -> None:
    def make(collection: Collection) -> dict[str, Metadata]:
        published = collection.delegated(RELEASES)
        assert published is not None
        md = Metadata.from_bytes(published.to_bytes())
        md.signed.targets["v1"].hashes["sha256"] = "f" * 64  # signatures kept, now invalid
        return {RELEASES: md}

    forge(signed_repo, make)
    forget_sessions()
    with pytest.raises(SignatureError, match="targets/releases was signed by 0/1 keys"):
        verify_tag(signed_repo.settings, signed_repo.tag("v1"))


# --- signatures ---------------------------------------------------------------------------
def test_signature_by_unknown_key(signed_repo: TrustedRepo) -> None:
    mallory = signed_repo.keystore.generate(role="delegation", name="mallory")
    forge(
        signed_repo, lambda c: {RELEASES: forged_releases(c, [mallory.keyid], signed_repo.keystore)}
    )
    with pytest.raises(SignatureError, match="unknown key, or fewer signatures than the threshold"):
        verify_tag(signed_repo.settings, signed_repo.tag("evil"))


def test_signatures_below_threshold(trusted_repo: TrustedRepo) -> None:
    ks = trusted_repo.keystore
    bob = ks.generate(role="delegation", name="bob")
    add_signer(
        trusted_repo.settings, trusted_repo.gun, "bob", [bob.public_key], threshold=2, keystore=ks
    )
    trusted_repo.sign("v1")
    assert verify_tag(trusted_repo.settings, trusted_repo.tag("v1")).signers == ("alice", "bob")
    forge(trusted_repo, lambda c: {RELEASES: forged_releases(c, [trusted_repo.signer.keyid], ks)})
    with pytest.raises(SignatureError, match="1/2 keys"):
        verify_tag(trusted_repo.settings, trusted_repo.tag("v1"))


def test_removed_signers_new_signature(trusted_repo: TrustedRepo) -> None:
    ks = trusted_repo.keystore
    bob = ks.generate(role="delegation", name="bob")
    add_signer(trusted_repo.settings, trusted_repo.gun, "bob", [bob.public_key], keystore=ks)
    trusted_repo.sign("v1")
    remove_signer(trusted_repo.settings, trusted_repo.gun, "alice", keystore=ks)
    assert verify_tag(trusted_repo.settings, trusted_repo.tag("v1")).signers == ("bob",)
    forge(trusted_repo, lambda c: {RELEASES: forged_releases(c, [trusted_repo.signer.keyid], ks)})
    with pytest.raises(SignatureError):
        verify_tag(trusted_repo.settings, trusted_repo.tag("evil"))


def test_root_rotation_not_signed_by_old_root(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    ks = signed_repo.keystore
    verify_tag(signed_repo.settings, signed_repo.tag("v1"))
    usurper = ks.generate(role="root", gun=signed_repo.gun)

    def make(collection: Collection) -> dict[str, Metadata]:
        md = Metadata.from_bytes(collection.root.to_bytes())
        for keyid in list(md.signed.roles["root"].keyids):
            md.signed.revoke_key(keyid, "root")
        md.signed.add_key(usurper.public_key, "root")
        md.signed.version += 1
        md.signatures.clear()
        md.sign(ks.signer(usurper.keyid))
        return {"root": md}

    forge(signed_repo, make)
    forget_sessions()
    for client in (signed_repo.settings, fresh_trust_client("c")):
        with pytest.raises(SignatureError, match="root was signed by 0/1 keys"):
            verify_tag(client, signed_repo.tag("v1"))


# --- endless data -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "kind", "message"),
    [
        # nothing signed says how long the timestamp is: its bound stops the read
        ("timestamp", FailureKind.UNTRUSTED, "too large"),
        # the snapshot records releases' length: nothing past it is read
        (RELEASES, FailureKind.TAMPERED, "longer than the [0-9]+ bytes recorded"),
    ],
)
def test_oversized_metadata_refused(
    signed_repo: TrustedRepo,
    fresh_trust_client: Callable[[str], Settings],
    role: str,
    kind: FailureKind,
    message: str,
) -> None:
    size = len(current(signed_repo, role)) + 100_000
    adversary(signed_repo).serve_endless(signed_repo.gun, role, size)
    with pytest.raises(UntrustedError, match=message) as caught:
        verify_tag(fresh_trust_client("c"), signed_repo.tag("v1"))
    assert caught.value.kind is kind
