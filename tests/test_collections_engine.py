"""The collection engine on real files: DCT semantics, rotation, crash safety, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.trust import TrustedRepo, digest_for

from trustkit.collections import (
    add_signer,
    inspect,
    list_signed_tags,
    remove_signer,
    renew,
    revoke,
    rotate_key,
    sign_tag,
    sign_tags,
    verify_tag,
)
from trustkit.collections.client import forget_sessions
from trustkit.config import Settings
from trustkit.errors import (
    BadInputError,
    KeyStoreError,
    NotSignedError,
    StorageError,
    UnknownRepositoryError,
)
from trustkit.keys import KeyStore
from trustkit.refs import parse
from trustkit.stores import LocalDirStore, escape_gun, open_store


def test_first_sign_creates_collection_in_targets(
    settings: Settings, trust_keystore: KeyStore
) -> None:
    ref = parse("localhost:5000/app:v1")
    roles = sign_tag(settings, ref, digest=digest_for("a"), size=10, keystore=trust_keystore)
    assert roles == ["targets"]
    trusted = verify_tag(settings, ref)
    assert (trusted.digest, trusted.size, trusted.role) == (digest_for("a"), 10, "targets")
    roles_with_keys = {r.role for r in trust_keystore.records(gun=ref.gun)}
    assert roles_with_keys == {"root", "targets", "snapshot", "timestamp"}


def test_releases_then_targets(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    trusted = verify_tag(fresh_trust_client("c1"), signed_repo.tag("v1"))
    assert trusted.role == "targets/releases"
    assert trusted.signers == ("alice",)
    assert trusted.digest == digest_for("v1")
    with pytest.raises(NotSignedError, match="tag v2 of localhost:5000/trusted/app is not signed"):
        verify_tag(signed_repo.settings, signed_repo.tag("v2"))


def test_resign_changes_digest(signed_repo: TrustedRepo) -> None:
    signed_repo.sign("v1", content="other")
    assert verify_tag(signed_repo.settings, signed_repo.tag("v1")).digest == digest_for("other")


def test_sign_without_signer_key_refused(
    signed_repo: TrustedRepo, settings: Settings, tmp_path: Path
) -> None:
    stranger = settings.with_changes(
        trust_dir=tmp_path / "stranger", trust_server=f"file://{settings.local_server_dir}"
    )
    with pytest.raises(KeyStoreError, match="not a signer"):
        sign_tag(stranger, signed_repo.tag("v2"), digest=digest_for("x"), size=1)


def test_bad_inputs(settings: Settings, trust_keystore: KeyStore) -> None:
    ref = parse("localhost:5000/app:v1")
    with pytest.raises(BadInputError, match="invalid digest"):
        sign_tag(settings, ref, digest="sha256:abc", size=1, keystore=trust_keystore)
    with pytest.raises(BadInputError, match="no tag"):
        sign_tag(
            settings, parse("localhost:5000/app", default_tag=False), digest=digest_for("a"), size=1
        )
    with pytest.raises(UnknownRepositoryError, match="no trust data for localhost:5000/app"):
        verify_tag(settings, ref)
    with pytest.raises(BadInputError, match="reserved"):
        add_signer(settings, "localhost:5000/app", "releases", [], keystore=trust_keystore)
    with pytest.raises(BadInputError, match="invalid signer name"):
        add_signer(settings, "localhost:5000/app", "Alice", [], keystore=trust_keystore)
    with pytest.raises(BadInputError, match="not supported yet"):  # https:// is a notary-server
        open_store(settings.with_changes(trust_server="ftp://notary.example").trust_store_url)


def test_threshold_and_signer_removal(trusted_repo: TrustedRepo) -> None:
    ks, settings, gun = trusted_repo.keystore, trusted_repo.settings, trusted_repo.gun
    bob = ks.generate(role="delegation", name="bob")
    add_signer(settings, gun, "bob", [bob.public_key], threshold=2, keystore=ks)
    with pytest.raises(BadInputError, match="threshold 3 is impossible"):
        add_signer(settings, gun, "bob", [bob.public_key], threshold=3, keystore=ks)
    roles = sign_tag(settings, trusted_repo.tag("v1"), digest=digest_for("v1"), size=1, keystore=ks)
    assert set(roles) == {"targets/releases", "targets/alice", "targets/bob"}
    assert verify_tag(settings, trusted_repo.tag("v1")).signers == ("alice", "bob")

    # remove alice: releases re-signed by bob's key (here) and threshold lowered to 1
    result = remove_signer(settings, gun, "alice", keystore=ks)
    assert any("threshold lowered" in w for w in result.warnings)
    assert verify_tag(settings, trusted_repo.tag("v1")).signers == ("bob",)

    with pytest.raises(BadInputError, match="last signer"):
        remove_signer(settings, gun, "bob", keystore=ks)
    with pytest.raises(BadInputError, match="not a signer"):
        remove_signer(settings, gun, "alice", keystore=ks)
    remove_signer(settings, gun, "bob", force=True, keystore=ks)
    # without delegations only targets counts: the releases signatures are gone
    with pytest.raises(NotSignedError):
        verify_tag(settings, trusted_repo.tag("v1"))


def test_threshold_needs_enough_local_keys(
    trusted_repo: TrustedRepo, settings: Settings, tmp_path: Path
) -> None:
    bob_settings = settings.with_changes(
        trust_dir=tmp_path / "bob", trust_server=f"file://{settings.local_server_dir}"
    )
    bob_keys = KeyStore(bob_settings)
    bob = bob_keys.generate(role="delegation", name="bob")
    add_signer(
        settings,
        trusted_repo.gun,
        "bob",
        [bob.public_key],
        threshold=2,
        keystore=trusted_repo.keystore,
    )
    with pytest.raises(KeyStoreError, match="needs 2 of its keys and 1 are in this key store"):
        sign_tag(
            bob_settings, trusted_repo.tag("v1"), digest=digest_for("v1"), size=1, keystore=bob_keys
        )


def test_revoke_one_and_all(signed_repo: TrustedRepo) -> None:
    signed_repo.sign("v2")
    settings, ks = signed_repo.settings, signed_repo.keystore
    assert set(revoke(settings, signed_repo.tag("v1"), keystore=ks)) == {
        "targets/releases",
        "targets/alice",
    }
    with pytest.raises(NotSignedError):
        verify_tag(settings, signed_repo.tag("v1"))
    assert verify_tag(settings, signed_repo.tag("v2")).tag == "v2"
    with pytest.raises(BadInputError, match="tag v1 of"):
        revoke(settings, signed_repo.tag("v1"), keystore=ks)
    revoke(settings, signed_repo.ref, keystore=ks)
    assert list_signed_tags(settings, signed_repo.gun) == []


def test_inspect_shape(signed_repo: TrustedRepo) -> None:
    report = inspect(signed_repo.settings, signed_repo.ref)
    assert report["Name"] == "localhost:5000/trusted/app"
    assert report["SignedTags"] == [
        {"SignedTag": "v1", "Digest": digest_for("v1").split(":")[1], "Signers": ["alice"]}
    ]
    assert report["Signers"] == [{"Name": "alice", "Keys": [{"ID": signed_repo.signer.keyid}]}]
    names = [k["Name"] for k in report["AdministrativeKeys"]]
    assert names == ["Root", "Repository"]
    root_ids = {r.keyid for r in signed_repo.keystore.records(role="root", gun=signed_repo.gun)}
    assert {k["ID"] for k in report["AdministrativeKeys"][0]["Keys"]} <= root_ids


def test_rotation_chain_verified_from_pinned_v1(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings], tmp_path: Path
) -> None:
    settings, ks, gun = signed_repo.settings, signed_repo.keystore, signed_repo.gun
    store_dir = settings.local_server_dir / escape_gun(gun)
    pinned = tmp_path / "root-v1.json"
    shutil.copy(store_dir / "1.root.json", pinned)
    old_client = fresh_trust_client("old")
    verify_tag(old_client, signed_repo.tag("v1"))  # caches root v1 only
    old_root_ids = {r.keyid for r in ks.records(role="root", gun=gun)}
    for role in ("root", "targets", "snapshot", "timestamp"):
        rotate_key(settings, gun, role, keystore=ks)
    assert LocalDirStore(settings.local_server_dir).root_version(gun) == 5
    new_root = json.loads((store_dir / "5.root.json").read_bytes())
    assert not old_root_ids & set(new_root["signed"]["roles"]["root"]["keyids"])
    signed_repo.sign("v2")
    for client in (fresh_trust_client("pinned"), old_client):
        root_file = pinned if client is not old_client else None
        assert verify_tag(client, signed_repo.tag("v2"), root_file=root_file).digest == digest_for(
            "v2"
        )
        assert (
            verify_tag(client, signed_repo.tag("v1"), root_file=root_file).role
            == "targets/releases"
        )
    assert (tmp_path / "pinned" / "tuf" / escape_gun(gun) / "root_history" / "5.root.json").exists()


def test_rotate_needs_root_key(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    with pytest.raises(KeyStoreError, match="root key"):
        rotate_key(fresh_trust_client("x"), signed_repo.gun, "targets")
    with pytest.raises(BadInputError):
        rotate_key(signed_repo.settings, signed_repo.gun, "releases")


def test_renew_bumps_versions(signed_repo: TrustedRepo) -> None:
    store = LocalDirStore(signed_repo.settings.local_server_dir)
    before = store.root_version(signed_repo.gun)
    renewed = renew(
        signed_repo.settings, signed_repo.gun, ["root", "targets"], keystore=signed_repo.keystore
    )
    assert renewed == ["root", "snapshot", "targets", "timestamp"]
    assert store.root_version(signed_repo.gun) == before + 1
    assert verify_tag(signed_repo.settings, signed_repo.tag("v1")).tag == "v1"


def test_many_tags_in_one_publish(trusted_repo: TrustedRepo) -> None:
    tags = {f"t{i}": (digest_for(str(i)), i) for i in range(300)}
    sign_tags(trusted_repo.settings, trusted_repo.gun, tags, keystore=trusted_repo.keystore)
    assert len(list_signed_tags(trusted_repo.settings, trusted_repo.gun)) == 300
    assert verify_tag(trusted_repo.settings, trusted_repo.tag("t299")).size == 299


# --- crash safety -------------------------------------------------------------------------
def _fail_on(monkeypatch: pytest.MonkeyPatch, predicate: Callable[[Path], bool]) -> None:
    """Fault injection: the publish dies when it writes a matching file."""
    import trustkit.stores.local as local

    real = local.atomic_write

    def flaky(path: Path, data: bytes, *, mode: int = 0o600) -> None:
        if predicate(path):
            raise StorageError(f"injected crash writing {path.name}")
        real(path, data, mode=mode)

    monkeypatch.setattr(local, "atomic_write", flaky)
    real_staged = local._write_synced

    def flaky_staged(path: Path, data: bytes) -> None:
        if predicate(path):
            raise StorageError(f"injected crash writing {path.name}")
        real_staged(path, data)

    monkeypatch.setattr(local, "_write_synced", flaky_staged)


def test_crash_before_commit_is_rolled_forward(
    signed_repo: TrustedRepo,
    monkeypatch: pytest.MonkeyPatch,
    fresh_trust_client: Callable[[str], Settings],
) -> None:
    settings = signed_repo.settings
    with monkeypatch.context() as patch:
        _fail_on(patch, lambda p: p.name == "current.json")
        with pytest.raises(StorageError, match="injected crash"):
            signed_repo.sign("v2")
    forget_sessions()
    # the last good set is what every client sees
    for client in (settings, fresh_trust_client("after-crash")):
        assert verify_tag(client, signed_repo.tag("v1")).digest == digest_for("v1")
        with pytest.raises(NotSignedError):
            verify_tag(client, signed_repo.tag("v2"))
    # the staged set was complete: the next writer finishes it before its own change
    signed_repo.sign("v3")
    assert verify_tag(settings, signed_repo.tag("v2")).digest == digest_for("v2")
    assert verify_tag(settings, signed_repo.tag("v3")).digest == digest_for("v3")


def test_crash_while_staging_is_discarded(
    signed_repo: TrustedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = signed_repo.settings
    with monkeypatch.context() as patch:
        _fail_on(patch, lambda p: p.parent.name == "staged" and "snapshot" in p.name)
        with pytest.raises(StorageError):
            signed_repo.sign("v2")
    staged = settings.local_server_dir / escape_gun(signed_repo.gun) / "staged"
    assert staged.exists()
    forget_sessions()
    assert verify_tag(settings, signed_repo.tag("v1")).tag == "v1"
    signed_repo.sign("v3")
    assert not staged.exists() or not any(staged.iterdir())  # the partial set is gone
    with pytest.raises(NotSignedError):
        verify_tag(settings, signed_repo.tag("v2"))
    assert verify_tag(settings, signed_repo.tag("v3")).tag == "v3"


def test_crash_during_root_rotation_keeps_old_root_served(
    signed_repo: TrustedRepo,
    monkeypatch: pytest.MonkeyPatch,
    fresh_trust_client: Callable[[str], Settings],
) -> None:
    with monkeypatch.context() as patch:
        _fail_on(patch, lambda p: p.name == "current.json")
        with pytest.raises(StorageError):
            rotate_key(
                signed_repo.settings, signed_repo.gun, "timestamp", keystore=signed_repo.keystore
            )
    store_dir = signed_repo.settings.local_server_dir / escape_gun(signed_repo.gun)
    assert (store_dir / "2.root.json").exists()  # written, but not yet committed
    assert verify_tag(fresh_trust_client("c"), signed_repo.tag("v1")).tag == "v1"


# --- concurrent writers -------------------------------------------------------------------
def _sign_in_child(settings: Settings, gun: str, tags: list[str]) -> None:
    keystore = KeyStore(settings)
    for tag in tags:
        sign_tag(settings, parse(f"{gun}:{tag}"), digest=digest_for(tag), size=1, keystore=keystore)


def test_concurrent_writers_are_serialised(trusted_repo: TrustedRepo) -> None:
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(
            target=_sign_in_child,
            args=(trusted_repo.settings, trusted_repo.gun, [f"{name}{i}" for i in range(4)]),
        )
        for name in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    tags = {t.tag for t in list_signed_tags(trusted_repo.settings, trusted_repo.gun)}
    assert tags == {f"{n}{i}" for n in "ab" for i in range(4)}


# --- typed evidence -----------------------------------------------------------------------
def test_evidence_for_a_tag_names_keys_and_every_tag_of_the_digest(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    from trustkit.collections import trust_evidence
    from trustkit.model import EvidenceSource

    signed_repo.sign("stable", content="v1")  # a second tag at v1's digest
    signed_repo.sign("v2")
    evidence = trust_evidence(fresh_trust_client("c"), signed_repo.tag("v1"))
    assert evidence.source is EvidenceSource.TUF_COLLECTION
    assert (evidence.checked, evidence.verified, evidence.failure) == (True, True, None)
    assert (evidence.digest, evidence.size) == (digest_for("v1"), 1234)
    assert evidence.tags == ("stable", "v1")
    assert [s.name for s in evidence.signers] == ["alice"]
    assert evidence.signers[0].keyids == (signed_repo.signer.keyid,)
    assert evidence.signers[0].role == "targets/alice"
    assert evidence.expires is not None

    by_digest = trust_evidence(signed_repo.settings, signed_repo.ref.with_digest(digest_for("v1")))
    assert by_digest.verified and by_digest.tags == ("stable", "v1")


def test_evidence_refusals_carry_their_kind(signed_repo: TrustedRepo) -> None:
    from trustkit.collections import trust_evidence
    from trustkit.errors import FailureKind

    moved = trust_evidence(
        signed_repo.settings,
        parse(f"{signed_repo.ref.repository}:v1@{digest_for('other')}"),
    )
    assert (moved.verified, moved.failure) == (False, FailureKind.TAG_MOVED)
    unsigned_tag = trust_evidence(signed_repo.settings, signed_repo.tag("nope"))
    assert unsigned_tag.failure is FailureKind.UNSIGNED and unsigned_tag.unsigned
    unknown_digest = trust_evidence(
        signed_repo.settings, signed_repo.ref.with_digest(digest_for("nope"))
    )
    assert unknown_digest.failure is FailureKind.UNSIGNED
    no_repo = trust_evidence(signed_repo.settings, parse("localhost:5000/nothing/here:v1"))
    assert no_repo.failure is FailureKind.UNSIGNED and not no_repo.verified


def test_planned_signer_identities_carry_the_keys_that_will_sign(
    trusted_repo: TrustedRepo,
) -> None:
    from trustkit.collections import planned_signer_identities

    planned = planned_signer_identities(
        trusted_repo.settings, trusted_repo.gun, keystore=trusted_repo.keystore
    )
    assert [(s.name, s.keyids, s.role) for s in planned] == [
        ("alice", (trusted_repo.signer.keyid,), "targets/alice")
    ]
    trusted_repo.sign("v1")
    signed = trust_evidence_of(trusted_repo, "v1")
    assert {s.keyids for s in signed.signers} == {s.keyids for s in planned}


def trust_evidence_of(repo: TrustedRepo, tag: str):  # type: ignore[no-untyped-def]
    from trustkit.collections import trust_evidence

    return trust_evidence(repo.settings, repo.tag(tag))
