"""Hashed-bin delegations (TAP 15) with DCT semantics: releases first, per-signer records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.trust import TrustedRepo, digest_for

from trustkit.collections import list_signed_tags, revoke, trust_evidence, verify_tag
from trustkit.collections.bins import BinsLayout, bin_for
from trustkit.collections.client import forget_sessions
from trustkit.collections.engine import use_bins
from trustkit.collections.layouts import layout_for
from trustkit.collections.model import RELEASES, TARGETS
from trustkit.collections.repository import Collection
from trustkit.config import Settings
from trustkit.errors import BadInputError, NotSignedError
from trustkit.stores import LocalDirStore, MetadataReader

BITS = 4


class CountingStore(LocalDirStore):
    """A local store that counts the bytes and files a client reads."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.read_files: list[str] = []
        self.read_bytes = 0

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        data = super().read(gun, role, version, limit=limit)
        self.read_files.append(role)
        self.read_bytes += len(data)
        return data


@pytest.fixture
def binned_repo(signed_repo: TrustedRepo) -> TrustedRepo:
    for i in range(20):
        signed_repo.sign(f"t{i}")
    assert (
        use_bins(signed_repo.settings, signed_repo.gun, bits=BITS, keystore=signed_repo.keystore)
        == 2 * 21
    )
    return signed_repo


def test_migration_keeps_every_tag_verifiable_by_a_client_with_dct_metadata_cached(
    signed_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    for i in range(20):
        signed_repo.sign(f"t{i}")
    old_client = fresh_trust_client("old")
    before = {t.tag: t.digest for t in list_signed_tags(old_client, signed_repo.gun)}
    assert len(before) == 21
    use_bins(signed_repo.settings, signed_repo.gun, bits=BITS, keystore=signed_repo.keystore)
    forget_sessions()  # a new process with the DCT-era metadata in its cache
    for tag, digest in before.items():
        found = verify_tag(old_client, signed_repo.tag(tag))
        assert found.digest == digest
        assert found.role == bin_for(RELEASES, BITS, tag)
        assert found.signers == ("alice",)
    assert {t.tag: t.digest for t in list_signed_tags(old_client, signed_repo.gun)} == before
    new_client = fresh_trust_client("new")
    assert verify_tag(new_client, signed_repo.tag("t7")).digest == digest_for("t7")


def test_publishing_one_tag_rewrites_one_bin_per_role(binned_repo: TrustedRepo) -> None:
    store = LocalDirStore(binned_repo.settings.local_server_dir)
    collection = Collection.load(store, binned_repo.gun)
    assert collection is not None
    layout = layout_for(collection.delegations)
    assert isinstance(layout, BinsLayout) and layout.bits == BITS
    from trustkit.collections import sign_tag

    roles = sign_tag(
        binned_repo.settings,
        binned_repo.tag("new"),
        digest=digest_for("new"),
        size=5,
        keystore=binned_repo.keystore,
    )
    assert sorted(roles) == sorted(
        [bin_for(RELEASES, BITS, "new"), bin_for("targets/alice", BITS, "new")]
    )
    after = Collection.load(store, binned_repo.gun)
    assert after is not None
    changed = {
        name
        for name, meta in after.snapshot.signed.meta.items()
        if collection.snapshot.signed.meta.get(name) != meta
    }
    assert changed == {f"{r}.json" for r in roles}


def test_cold_verify_reads_one_bin_not_the_collection(
    binned_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    from trustkit.collections.client import TrustSession

    store = CountingStore(binned_repo.settings.local_server_dir)
    session = TrustSession(fresh_trust_client("cold"), store, binned_repo.gun)
    found = session.find("t3")
    assert found.digest == digest_for("t3") and found.signers == ("alice",)
    bins_read = [r for r in store.read_files if ".bin-" in r]
    # the releases bin of the tag and alice's bin (who recorded it), nothing else
    assert sorted(bins_read) == sorted(
        [bin_for(RELEASES, BITS, "t3"), bin_for("targets/alice", BITS, "t3")]
    )
    with pytest.raises(NotSignedError):
        session.find("never-signed")


def test_binned_collection_keeps_dct_semantics(binned_repo: TrustedRepo) -> None:
    settings = binned_repo.settings
    evidence = trust_evidence(settings, binned_repo.tag("t5"))
    assert evidence.verified and [s.name for s in evidence.signers] == ["alice"]
    assert evidence.signers[0].keyids == (binned_repo.signer.keyid,)
    revoke(settings, binned_repo.tag("t5"), keystore=binned_repo.keystore)
    with pytest.raises(NotSignedError):
        verify_tag(settings, binned_repo.tag("t5"))
    assert verify_tag(settings, binned_repo.tag("t6")).role != TARGETS
    with pytest.raises(BadInputError, match="already"):
        use_bins(settings, binned_repo.gun, bits=BITS, keystore=binned_repo.keystore)


def test_store_reader_type() -> None:
    assert issubclass(CountingStore, MetadataReader)


def test_signers_added_and_removed_in_a_binned_collection(
    binned_repo: TrustedRepo, fresh_trust_client: Callable[[str], Settings]
) -> None:
    from trustkit.collections import add_signer, inspect, remove_signer, sign_tag

    settings, keys = binned_repo.settings, binned_repo.keystore
    bob = keys.generate(role="delegation", name="bob")
    add_signer(settings, binned_repo.gun, "bob", [bob.public_key], keystore=keys)
    # alice's tags keep verifying: keys were only added to the releases bins
    client = fresh_trust_client("reader")
    assert verify_tag(client, binned_repo.tag("t1")).signers == ("alice",)
    doc = inspect(settings, binned_repo.tag("t1"))
    keys_of = {s["Name"]: [k["ID"] for k in s["Keys"]] for s in doc["Signers"]}
    assert keys_of == {"alice": [binned_repo.signer.keyid], "bob": [bob.keyid]}
    # both keys are here: a new tag is recorded by both signers
    sign_tag(settings, binned_repo.tag("both"), digest=digest_for("both"), size=3, keystore=keys)
    assert verify_tag(client, binned_repo.tag("both")).signers == ("alice", "bob")
    # alice's key is stolen: removing her drops every tag only she vouched for
    result = remove_signer(settings, binned_repo.gun, "alice", keystore=keys)
    lost = {u.tag for u in result.untrusted}
    assert "t1" in lost and "both" not in lost
    forget_sessions()
    with pytest.raises(NotSignedError):
        verify_tag(client, binned_repo.tag("t1"))
    assert verify_tag(client, binned_repo.tag("both")).signers == ("bob",)
    with pytest.raises(BadInputError, match="last signer"):
        remove_signer(settings, binned_repo.gun, "bob", keystore=keys)


def test_cli_layout_moves_a_collection_onto_bins(passphrase_env: object, tmp_path: object) -> None:
    from pathlib import Path

    from click.testing import CliRunner

    from trustkit.cli import cli

    assert isinstance(tmp_path, Path)
    repo = "localhost:5000/cli/bins"
    runner = CliRunner()
    pub = tmp_path / "pub"
    assert (
        runner.invoke(cli, ["trust", "key", "generate", "alice", "--dir", str(pub)]).exit_code == 0
    )
    add = ["trust", "signer", "add", "--key", str(pub / "alice.pub"), "alice", repo]
    assert runner.invoke(cli, add).exit_code == 0
    sign = ["trust", "sign", f"{repo}:v1", "--digest", digest_for("v1"), "--size", "3"]
    assert runner.invoke(cli, sign).exit_code == 0
    moved = runner.invoke(cli, ["trust", "layout", repo, "bins", "--bits", "3"])
    assert moved.exit_code == 0, moved.output
    assert "2 signed tag record(s) moved" in moved.output
    verified = runner.invoke(cli, ["trust", "verify", f"{repo}:v1"])
    assert verified.exit_code == 0 and verified.output.strip() == digest_for("v1")
    sign2 = ["trust", "sign", f"{repo}:v2", "--digest", digest_for("v2"), "--size", "3"]
    signed = runner.invoke(cli, sign2)
    assert signed.exit_code == 0 and ".bin-" in signed.output


# --- a compromised server (holding snapshot and timestamp keys) forging a bin ----------------
def _forge_bin(repo: TrustedRepo, tag: str, signer_ids: list[str]) -> None:
    """Publish the releases bin of ``tag`` with ``tag`` -> an evil digest, signed only by
    ``signer_ids``, under a valid snapshot and timestamp."""
    from trustkit.collections._tuf import Metadata, MetaFile, TargetFile, Targets
    from trustkit.collections.model import DEFAULT_EXPIRIES
    from trustkit.stores import MetadataFile, open_store

    store = open_store(repo.settings.trust_store_url)
    collection = Collection.load(store, repo.gun)
    assert collection is not None
    role = bin_for(RELEASES, BITS, tag)
    published = collection.delegated(role)
    md = (
        Metadata.from_bytes(published.to_bytes())
        if published is not None
        else Metadata(Targets(version=collection.published_version(role)))
    )
    md.signed.version += 1
    md.signed.targets[tag] = TargetFile(1, {"sha256": "e" * 64}, tag)
    md.signatures.clear()
    for keyid in signer_ids:
        md.sign(repo.keystore.signer(keyid), append=True)
    data = md.to_bytes()
    collection.snapshot.signed.meta[f"{role}.json"] = MetaFile(md.signed.version, length=len(data))

    class Injecting(LocalDirStore):
        def publish(self, gun: str, files: object, *, expected: str | None) -> str:
            extra = [MetadataFile(role, md.signed.version, data)]
            return super().publish(gun, [*extra, *files], expected=expected)  # type: ignore[misc]

    collection.publish(repo.keystore, DEFAULT_EXPIRIES, Injecting(repo.settings.local_server_dir))


def test_forged_bin_signed_by_an_unknown_key(binned_repo: TrustedRepo) -> None:
    from trustkit.errors import SignatureError

    mallory = binned_repo.keystore.generate(role="delegation", name="mallory")
    _forge_bin(binned_repo, "evil", [mallory.keyid])
    with pytest.raises(SignatureError, match="unknown key, or fewer signatures"):
        verify_tag(binned_repo.settings, binned_repo.tag("evil"))


def test_bin_signed_below_the_releases_threshold(binned_repo: TrustedRepo) -> None:
    from trustkit.collections import add_signer
    from trustkit.errors import BelowThresholdError

    keys = binned_repo.keystore
    bob = keys.generate(role="delegation", name="bob")
    add_signer(
        binned_repo.settings, binned_repo.gun, "bob", [bob.public_key], threshold=2, keystore=keys
    )
    binned_repo.sign("v2")
    assert verify_tag(binned_repo.settings, binned_repo.tag("v2")).signers == ("alice", "bob")
    _forge_bin(binned_repo, "v2", [binned_repo.signer.keyid])
    with pytest.raises(BelowThresholdError, match="1/2 keys"):
        verify_tag(binned_repo.settings, binned_repo.tag("v2"))


def test_removed_signers_key_no_longer_signs_a_bin(binned_repo: TrustedRepo) -> None:
    from trustkit.collections import add_signer, remove_signer
    from trustkit.errors import SignatureError

    keys = binned_repo.keystore
    bob = keys.generate(role="delegation", name="bob")
    add_signer(binned_repo.settings, binned_repo.gun, "bob", [bob.public_key], keystore=keys)
    binned_repo.sign("v2")
    remove_signer(binned_repo.settings, binned_repo.gun, "alice", keystore=keys)
    assert verify_tag(binned_repo.settings, binned_repo.tag("v2")).signers == ("bob",)
    _forge_bin(binned_repo, "evil", [binned_repo.signer.keyid])
    with pytest.raises(SignatureError):
        verify_tag(binned_repo.settings, binned_repo.tag("evil"))


def test_cosigning_a_binned_release(
    binned_repo: TrustedRepo,
    settings: Settings,
    tmp_path: Path,
    fresh_trust_client: Callable[[str], Settings],
) -> None:
    """releases threshold 2 with bob's key on another machine: alice's sign waits as a pending
    change of the tag's bins until bob approves."""
    import shutil

    from trustkit.collections import add_signer, sign_or_propose
    from trustkit.collections.cosigning import approve
    from trustkit.keys import KeyStore

    bob_settings = settings.with_changes(
        trust_dir=tmp_path / "bob", trust_server=f"file://{settings.local_server_dir}"
    )
    bob_keys = KeyStore(bob_settings)
    bob = bob_keys.generate(role="delegation", name="bob")
    alice_keys = binned_repo.keystore
    add_signer(settings, binned_repo.gun, "bob", [bob.public_key], threshold=2, keystore=alice_keys)
    outcome = sign_or_propose(
        settings, binned_repo.tag("v9"), digest=digest_for("v9"), size=9, keystore=alice_keys
    )
    assert outcome.pending is not None and not outcome.pending.ready
    release = outcome.pending.roles[0]
    assert (release.role, release.signatures, release.threshold) == (
        bin_for(RELEASES, BITS, "v9"),
        1,
        2,
    )
    assert release.signers == ("alice",)
    with pytest.raises(NotSignedError):
        verify_tag(fresh_trust_client("before"), binned_repo.tag("v9"))
    # bob can publish: hand him the snapshot and timestamp keys, as an operator would
    bob_keys.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for role in ("snapshot", "timestamp"):
        for record in alice_keys.records(role=role, gun=binned_repo.gun):
            for suffix in (".key", ".json"):
                name = f"{record.keyid}{suffix}"
                shutil.copy2(alice_keys.directory / name, bob_keys.directory / name)
    approval = approve(bob_settings, binned_repo.gun, outcome.pending.id, keystore=bob_keys)
    assert approval.published
    trusted = verify_tag(fresh_trust_client("after"), binned_repo.tag("v9"))
    assert trusted.digest == digest_for("v9") and trusted.signers == ("alice", "bob")
