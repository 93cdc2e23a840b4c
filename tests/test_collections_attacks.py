"""Attacks on stored trust data, each refused with a clear message (real files, real client)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
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
    RollbackError,
    SignatureError,
    UntrustedError,
)
from trustkit.keys import KeyStore
from trustkit.refs import parse
from trustkit.stores import LocalDirStore, MetadataFile, escape_gun

RELEASES = "targets/releases"


def store_dir(repo: TrustedRepo) -> Path:
    return repo.settings.local_server_dir / escape_gun(repo.gun)


def current(repo: TrustedRepo, role: str) -> Path:
    """The file of ``role`` the current snapshot names."""
    directory = store_dir(repo)
    head = json.loads((directory / "current.json").read_text())
    if role == "timestamp":
        return directory / f"{head['timestamp']}.timestamp.json"
    ts = json.loads((directory / f"{head['timestamp']}.timestamp.json").read_text())
    snap_version = ts["signed"]["meta"]["snapshot.json"]["version"]
    if role == "snapshot":
        return directory / f"{snap_version}.snapshot.json"
    snap = json.loads((directory / f"{snap_version}.snapshot.json").read_text())
    version = snap["signed"]["meta"][f"{role}.json"]["version"]
    return directory / f"{version}.{role.replace('/', '%2F')}.json"


class _Inject:
    """Publishes forged files along with the snapshot and timestamp the engine signs."""

    def __init__(self, store: LocalDirStore, extra: list[MetadataFile]) -> None:
        self.store = store
        self.extra = extra

    def publish(self, gun: str, files: list[MetadataFile], *, expected: str | None) -> str:
        return self.store.publish(gun, [*self.extra, *files], expected=expected)


def forge(
    repo: TrustedRepo,
    make: Callable[[Collection], dict[str, Metadata]],
) -> None:
    """A compromised server: publish forged roles with valid snapshot and timestamp signatures."""
    store = LocalDirStore(repo.settings.local_server_dir)
    with store.writer_lock(repo.gun):
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
        collection.publish(repo.keystore, DEFAULT_EXPIRIES, _Inject(store, extra))  # type: ignore[arg-type]


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
    signed_repo: TrustedRepo, tmp_path: Path, change: str, expected: type[Exception]
) -> None:
    backup = tmp_path / "old-store"
    shutil.copytree(store_dir(signed_repo), backup)
    if change == "sign":
        signed_repo.sign("v2")
    else:
        rotate_key(signed_repo.settings, signed_repo.gun, change, keystore=signed_repo.keystore)
    verify_tag(signed_repo.settings, signed_repo.tag("v1"))  # this client saw the newer set
    shutil.rmtree(store_dir(signed_repo))
    shutil.copytree(backup, store_dir(signed_repo))
    forget_sessions()
    with pytest.raises(expected) as caught:
        verify_tag(signed_repo.settings, signed_repo.tag("v1"))
    if expected is RollbackError:
        assert "rollback" in str(caught.value)


def test_rollback_of_snapshot(signed_repo: TrustedRepo) -> None:
    signed_repo.sign("v2")  # snapshot version 3
    verify_tag(signed_repo.settings, signed_repo.tag("v1"))
    old_snapshot = Metadata.from_bytes((store_dir(signed_repo) / "1.snapshot.json").read_bytes())

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
    old_file = store_dir(signed_repo) / f"1.{role.replace('/', '%2F')}.json"
    verify_tag(signed_repo.settings, signed_repo.tag("v2"))

    def make(collection: Collection) -> dict[str, Metadata]:
        collection.snapshot.signed.meta[f"{role}.json"] = MetaFile.from_data(
            1, old_file.read_bytes(), ["sha256"]
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
    before = current(signed_repo, role).read_bytes()
    signed_repo.sign("v2")
    current(signed_repo, role).write_bytes(before)  # a valid older file in the newer set
    # ECDSA signatures vary in length, so the older file is refused either by its hash or, when
    # it happens to be longer, by the length the newer metadata recorded for it
    with pytest.raises(UntrustedError, match=r"mix-and-match|larger than the"):
        verify_tag(fresh_trust_client("c"), signed_repo.tag("v1"))


def test_version_mismatch_refused(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    old = current(signed_repo, RELEASES).read_bytes()

    def make(collection: Collection) -> dict[str, Metadata]:
        md = Metadata.from_bytes(old)
        md.signed.version = 7  # claims version 7 in the snapshot, the signed bytes say 1
        return {}

    signed_repo.sign("v2")

    def make_mismatch(collection: Collection) -> dict[str, Metadata]:
        collection.snapshot.signed.meta[f"{RELEASES}.json"] = MetaFile.from_data(7, old, ["sha256"])
        (store_dir(signed_repo) / "7.targets%2Freleases.json").write_bytes(old)
        return {}

    forge(signed_repo, make_mismatch)
    with pytest.raises(RollbackError, match="version"):
        verify_tag(fresh_trust_client("c"), signed_repo.tag("v1"))


def test_target_digest_edited_in_place(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    path = current(signed_repo, RELEASES)
    original = path.read_bytes()
    edited = original.replace(digest_for("v1").split(":")[1].encode(), b"f" * 64)
    assert edited != original and len(edited) == len(original)
    path.write_bytes(edited)
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
@pytest.mark.parametrize("role", ["timestamp", RELEASES])
def test_oversized_metadata_refused(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings], role: str
) -> None:
    path = current(signed_repo, role)
    path.write_bytes(path.read_bytes() + b" " * 100_000)
    with pytest.raises(UntrustedError, match="too large"):
        verify_tag(fresh_trust_client("c"), signed_repo.tag("v1"))
