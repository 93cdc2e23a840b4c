"""The store contract: every trust store (``STORE_KINDS`` in tests/fixtures/stores.py) keeps it.

Three parts, each run against every store:
- the interface itself: bounded reads, optimistic publishing (one winner per generation),
  declared capabilities, pending changes;
- honest use through the real engine: a fresh client verifies what a writer signed, and writers
  working at the same moment each lose nothing;
- attacks by the store's adversary (rollback, fork, swapped bytes, dropped and truncated files,
  endless data, freeze, mix-and-match), each refused in one line with the right failure kind.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.stores import HASHED_BINS, OPAQUE_SETS, STAGED_FORK, Adversary, StoreCase, StoreState
from fixtures.trust import digest_for

from trustkit.collections import (
    Expiries,
    add_signer,
    list_signed_tags,
    sign_tag,
    verify_tag,
)
from trustkit.collections._tuf import Metadata, MetaFile, Snapshot, Timestamp
from trustkit.collections.bins import bin_for
from trustkit.collections.engine import use_bins
from trustkit.collections.model import TARGETS_MAX_BYTES, TIMESTAMP_MAX_BYTES
from trustkit.config import Settings
from trustkit.errors import (
    EXIT_ENVIRONMENT,
    BadInputError,
    ConflictError,
    FailureKind,
    InputTooLargeError,
    StorageError,
    TrustkitError,
    UntrustedError,
)
from trustkit.keys import KeyStore
from trustkit.refs import ImageRef, parse
from trustkit.services import Services
from trustkit.stores import (
    MetadataFile,
    MetadataNotFoundError,
    MetadataStore,
    PendingChanges,
    PendingNotFoundError,
    StoreCapabilities,
    metadata_filename,
    open_store,
)
from trustkit.stores.interface import check_expected
from trustkit.stores.memory import MemoryCollection, MemoryStore

GUN = "localhost:5000/contract/app"
RELEASES = "targets/releases"
BITS = 4  # 16 bins: small collections, the same code paths as 512
TOP_LEVEL = {"root", "targets", "snapshot", "timestamp"}


def _set(version: int, *, root: int | None = None, tag: bytes = b"") -> list[MetadataFile]:
    """A publishable set of (unsigned: stores never verify) metadata files."""
    files = [
        MetadataFile("targets", version, b'{"targets": %d%s}' % (version, tag)),
        MetadataFile("snapshot", version, b'{"snapshot": %d%s}' % (version, tag)),
        MetadataFile("timestamp", version, b'{"timestamp": %d%s}' % (version, tag)),
    ]
    if root is not None:
        files.insert(0, MetadataFile("root", root, b'{"root": %d}' % root))
    return files


def _writable(case: StoreCase, files: list[MetadataFile]) -> list[MetadataFile]:
    server_signed = case.store.capabilities.server_signed_roles
    return [f for f in files if f.role not in server_signed]


# --- the interface ------------------------------------------------------------------------
def test_an_empty_store_has_nothing(store_case: StoreCase) -> None:
    store = store_case.store
    assert not store.exists(GUN)
    assert store.generation(GUN) is None
    assert store.root_version(GUN) == 0
    with pytest.raises(MetadataNotFoundError):
        store.read(GUN, "timestamp", None, limit=1 << 16)
    with pytest.raises(MetadataNotFoundError):
        store.read(GUN, "root", 1, limit=1 << 16)


def test_publish_then_read(store_case: StoreCase) -> None:
    store_case.require(OPAQUE_SETS)
    store = store_case.store
    generation = store.publish(GUN, _writable(store_case, _set(1, root=1)), expected=None)
    assert store.exists(GUN)
    assert store.generation(GUN) == generation
    assert store.root_version(GUN) == 1
    assert store.read(GUN, "root", 1, limit=100) == b'{"root": 1}'
    assert store.read(GUN, "targets", 1, limit=100) == b'{"targets": 1}'
    assert store.read(GUN, "timestamp", None, limit=100) == b'{"timestamp": 1}'
    # the timestamp is served only as "the current one"; other roles only by version
    with pytest.raises(MetadataNotFoundError):
        store.read(GUN, "timestamp", 1, limit=100)
    with pytest.raises(MetadataNotFoundError):
        store.read(GUN, "snapshot", None, limit=100)
    with pytest.raises(MetadataNotFoundError):
        store.read(GUN, "root", 2, limit=100)
    # the same store, opened again by its URL, serves the same data
    assert open_store(store_case.url).read(GUN, "targets", 1, limit=100) == b'{"targets": 1}'


def test_every_read_is_bounded(store_case: StoreCase) -> None:
    store_case.require(OPAQUE_SETS)
    store = store_case.store
    store.publish(GUN, _writable(store_case, _set(1, root=1)), expected=None)
    size = len(b'{"targets": 1}')
    assert store.read(GUN, "targets", 1, limit=size) == b'{"targets": 1}'
    with pytest.raises(InputTooLargeError):
        store.read(GUN, "targets", 1, limit=size - 1)
    with pytest.raises(InputTooLargeError):
        store.read(GUN, "timestamp", None, limit=3)


def test_publish_is_conditional_on_the_generation_read(store_case: StoreCase) -> None:
    store_case.require(OPAQUE_SETS)
    store = store_case.store
    first = store.publish(GUN, _writable(store_case, _set(1, root=1)), expected=None)
    with pytest.raises(ConflictError) as caught:  # "must not exist yet", but it does
        store.publish(GUN, _writable(store_case, _set(2, root=1, tag=b"x")), expected=None)
    assert caught.value.exit_code == EXIT_ENVIRONMENT
    assert GUN in str(caught.value) and "\n" not in caught.value.one_line()
    second = store.publish(GUN, _writable(store_case, _set(2)), expected=first)
    assert second != first and store.generation(GUN) == second
    with pytest.raises(ConflictError):  # a writer that loaded the first set is too late
        store.publish(GUN, _writable(store_case, _set(3, tag=b"stale")), expected=first)
    # nothing of a refused publish is visible
    assert store.read(GUN, "timestamp", None, limit=100) == b'{"timestamp": 2}'
    with pytest.raises(MetadataNotFoundError):
        store.read(GUN, "targets", 3, limit=100)
    assert store.generation(GUN) == second


def test_a_writer_signed_timestamp_is_required(store_case: StoreCase) -> None:
    store = store_case.store
    if "timestamp" in store.capabilities.server_signed_roles:
        pytest.skip(f"{store.description} signs the timestamp itself")
    without = [f for f in _set(1, root=1) if f.role != "timestamp"]
    with pytest.raises(StorageError, match="timestamp"):
        store.publish(GUN, without, expected=None)
    assert not store.exists(GUN)


def test_one_winner_per_generation(store_case: StoreCase) -> None:
    store_case.require(OPAQUE_SETS)
    store = store_case.store
    base = store.publish(GUN, _writable(store_case, _set(1, root=1)), expected=None)
    writers = 8
    start = threading.Barrier(writers)
    won: list[int] = []
    lost: list[int] = []

    def write(n: int) -> None:
        start.wait()
        try:
            store.publish(GUN, _writable(store_case, _set(2, tag=b"-%d" % n)), expected=base)
            won.append(n)
        except ConflictError:
            lost.append(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1 and len(lost) == writers - 1
    winner = b'{"timestamp": 2-%d}' % won[0]
    assert store.read(GUN, "timestamp", None, limit=100) == winner


def test_writing_may_be_held_around_publish(store_case: StoreCase) -> None:
    store_case.require(OPAQUE_SETS)
    store = store_case.store
    with store.writing(GUN):  # the optional hint: never a deadlock with publish inside
        generation = store.generation(GUN)
        store.publish(GUN, _writable(store_case, _set(1, root=1)), expected=generation)
        with store.writing(GUN):
            store.publish(GUN, _writable(store_case, _set(2)), expected=store.generation(GUN))
        again = open_store(store_case.url)  # the same store through another object
        again.publish(GUN, _writable(store_case, _set(3)), expected=again.generation(GUN))
    assert store.read(GUN, "timestamp", None, limit=100) == b'{"timestamp": 3}'


def test_capabilities_are_declared(store_case: StoreCase) -> None:
    capabilities = store_case.store.capabilities
    assert isinstance(capabilities, StoreCapabilities)
    assert isinstance(capabilities.server_signed_roles, frozenset)
    assert capabilities.server_signed_roles <= TOP_LEVEL - {"root", "targets"}
    assert isinstance(capabilities.pending_changes, bool)
    if not capabilities.pending_changes:
        with pytest.raises(StorageError, match="cannot hold pending"):
            _ = store_case.store.pending


def test_pending_changes(store_case: StoreCase) -> None:
    store = store_case.store
    if not store.capabilities.pending_changes:
        pytest.skip(f"{store.description} declares no pending changes")
    pending = store.pending
    assert pending.list(GUN) == []
    pending.write(GUN, "bb" * 8, b"second")
    pending.write(GUN, "aa" * 8, b"first")
    pending.write(GUN, "aa" * 8, b"first, replaced")
    assert pending.list(GUN) == ["aa" * 8, "bb" * 8]
    assert pending.read(GUN, "aa" * 8, limit=100) == b"first, replaced"
    with pytest.raises(InputTooLargeError):
        pending.read(GUN, "aa" * 8, limit=5)
    assert not store.exists(GUN)  # pending changes are not published metadata
    pending.remove(GUN, "aa" * 8)
    pending.remove(GUN, "aa" * 8)  # absent is not an error
    assert pending.list(GUN) == ["bb" * 8]
    with pytest.raises(PendingNotFoundError):
        pending.read(GUN, "aa" * 8, limit=100)
    for hostile in ("../../etc/passwd", "AA" * 8, "a" * 8, ""):
        with pytest.raises(BadInputError):
            pending.write(GUN, hostile, b"x")


class _ServerSigning(MemoryStore):
    """A Notary-like server: it holds the snapshot and timestamp keys and signs both itself
    from the roles writers send (and records what each writer sent)."""

    def __init__(self, name: str, keystore: KeyStore) -> None:
        super().__init__(name)
        self.keystore = keystore
        self.sent: list[list[str]] = []

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(
            server_signed_roles=frozenset({"snapshot", "timestamp"}), pending_changes=False
        )

    @property
    def pending(self) -> PendingChanges:
        return MetadataStore.pending.fget(self)  # type: ignore[attr-defined,no-any-return]

    def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
        self.check_publishable(gun, files)
        self.sent.append(sorted(f.role for f in files))
        with self.lock:
            check_expected(self.description, gun, expected, self.generation(gun))
            collection = self.collections.setdefault(gun, MemoryCollection())
            stored = {metadata_filename(f.role, f.version): f.data for f in files}
            root_version = max(
                [f.version for f in files if f.role == "root"], default=collection.head.get("root")
            )
            assert root_version is not None
            root_bytes = (
                stored.get(f"{root_version}.root.json")
                or collection.files[f"{root_version}.root.json"]
            )
            root = Metadata.from_bytes(root_bytes).signed
            expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
            if collection.head:
                old = Metadata.from_bytes(
                    collection.files[f"{collection.head['timestamp']}.timestamp.json"]
                )
                snap_version = old.signed.snapshot_meta.version
                snapshot = Metadata.from_bytes(collection.files[f"{snap_version}.snapshot.json"])
                snapshot.signed.version += 1
                timestamp_version = collection.head["timestamp"] + 1
            else:
                snapshot, timestamp_version = Metadata(Snapshot()), 1
            for item in files:
                if item.role != "root":
                    snapshot.signed.meta[f"{item.role}.json"] = MetaFile.from_data(
                        item.version, item.data, ["sha256"]
                    )
            snapshot.signed.expires = expires
            snapshot.signatures.clear()
            for keyid in root.roles["snapshot"].keyids:
                snapshot.sign(self.keystore.signer(keyid), append=True)
            snapshot_bytes = snapshot.to_bytes()
            timestamp = Metadata(Timestamp(version=timestamp_version, expires=expires))
            timestamp.signed.snapshot_meta = MetaFile.from_data(
                snapshot.signed.version, snapshot_bytes, ["sha256"]
            )
            for keyid in root.roles["timestamp"].keyids:
                timestamp.sign(self.keystore.signer(keyid), append=True)
            stored[f"{snapshot.signed.version}.snapshot.json"] = snapshot_bytes
            stored[f"{timestamp_version}.timestamp.json"] = timestamp.to_bytes()
            collection.files.update(stored)
            collection.head = {"root": root_version, "timestamp": timestamp_version}
            return f"{root_version}.{timestamp_version}"


def test_roles_the_server_signs_are_left_to_it(settings: Settings, tmp_path: Path) -> None:
    keystore = KeyStore(settings)
    store = _ServerSigning("notary-like", keystore)
    writer = Services(settings, store=store, keys=keystore)
    alice = keystore.generate(role="delegation", name="alice")
    add_signer(writer, GUN, "alice", [alice.public_key])
    sign_tag(writer, parse(f"{GUN}:v1"), digest=digest_for("v1"), size=2)
    sign_tag(writer, parse(f"{GUN}:v2"), digest=digest_for("v2"), size=2)
    # the writer sends only what it signs: never the snapshot and timestamp the server signs
    releases = ["targets/alice", "targets/releases"]
    assert store.sent == [["root", "targets"], releases, releases]
    client = Services(settings.with_changes(trust_dir=tmp_path / "client"), store=store)
    assert verify_tag(client, parse(f"{GUN}:v1")).digest == digest_for("v1")
    assert verify_tag(client, parse(f"{GUN}:v2")).signers == ("alice",)
    with pytest.raises(StorageError, match="signs timestamp itself"):
        store.publish(GUN, [MetadataFile("timestamp", 9, b"{}")], expected=store.generation(GUN))
    with pytest.raises(StorageError, match="cannot hold pending"):
        _ = store.pending


# --- honest use through the engine ----------------------------------------------------------
@dataclass
class Repo:
    case: StoreCase
    ref: ImageRef
    layout: str = "dct"  # or "bins": the same collection on hashed-bin delegations

    def release_role(self, tag: str) -> str:
        """The role a pull trusts for ``tag``: releases, or the releases bin of the tag."""
        return RELEASES if self.layout == "dct" else bin_for(RELEASES, BITS, tag)

    def tag_beside(self, tag: str) -> str:
        """Another tag written into the same release role as ``tag``."""
        candidates = (f"v2-{n}" for n in range(10_000))
        return next(t for t in candidates if self.release_role(t) == self.release_role(tag))

    @property
    def settings(self) -> Settings:
        return self.case.settings

    @property
    def adversary(self) -> Adversary:
        return self.case.adversary

    def tag(self, tag: str) -> ImageRef:
        return self.ref.with_tag(tag)

    def sign(
        self, tag: str, *, keystore: KeyStore | None = None, expiries: Expiries | None = None
    ) -> None:
        sign_tag(
            self.settings,
            self.tag(tag),
            digest=digest_for(tag),
            size=len(tag),
            keystore=keystore or self.case.keystore,
            expiries=expiries,
        )

    def save(self) -> StoreState:
        return self.adversary.save(self.ref.gun)


@pytest.fixture(params=["dct", "bins"])
def repo(store_case: StoreCase, request: pytest.FixtureRequest) -> Repo:
    """A collection with signer alice and tag v1 signed, in the case's store: DCT's layout,
    and the same on hashed bins."""
    if request.param == "bins":
        store_case.require(HASHED_BINS)
    alice = store_case.keystore.generate(role="delegation", name="alice")
    ref = parse(GUN, default_tag=False)
    add_signer(
        store_case.settings, ref.gun, "alice", [alice.public_key], keystore=store_case.keystore
    )
    if request.param == "bins":
        use_bins(store_case.settings, ref.gun, bits=BITS, keystore=store_case.keystore)
    signed = Repo(store_case, ref, request.param)
    signed.sign("v1")
    return signed


def test_a_fresh_client_verifies_what_was_signed(repo: Repo) -> None:
    client = repo.case.client("fresh")
    target = verify_tag(client, repo.tag("v1"))
    assert (target.digest, target.size, target.signers) == (digest_for("v1"), 2, ("alice",))
    repo.sign("v2")
    assert verify_tag(client, repo.tag("v2")).digest == digest_for("v2")
    assert [t.tag for t in list_signed_tags(client, repo.ref.gun)] == ["v1", "v2"]


def test_an_injected_store_is_the_store_used(store_case: StoreCase, tmp_path: Path) -> None:
    elsewhere = store_case.settings.with_changes(trust_server=f"file://{tmp_path / 'elsewhere'}")
    services = Services(elsewhere, store=store_case.store, keys=store_case.keystore)
    alice = store_case.keystore.generate(role="delegation", name="alice")
    add_signer(services, GUN, "alice", [alice.public_key])
    sign_tag(services, parse(f"{GUN}:v1"), digest=digest_for("v1"), size=2)
    assert verify_tag(store_case.client("fresh"), parse(f"{GUN}:v1")).digest == digest_for("v1")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.timeout(240)
def test_writers_at_the_same_moment_lose_nothing(repo: Repo) -> None:
    writers, tags_each = 4, 3
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        keystore = KeyStore(repo.settings)  # each writer its own key store object
        start.wait()
        try:
            for i in range(tags_each):
                repo.sign(f"w{n}-{i}", keystore=keystore)
        except BaseException as exc:  # reported below, with the writer that failed
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=200)
    assert failures == []
    signed = {t.tag for t in list_signed_tags(repo.case.client("after"), repo.ref.gun)}
    expected = {"v1"} | {f"w{n}-{i}" for n in range(writers) for i in range(tags_each)}
    assert signed == expected


# --- attacks ------------------------------------------------------------------------------
EXPIRED = timedelta(seconds=-1)


@dataclass(frozen=True)
class Attack:
    """Stage an attack on ``repo`` and return the client that must refuse, and the tag it asks
    for. ``refused_as`` is the failure kind (or, for a store that lost a file, the environment
    error) the client's refusal carries."""

    name: str
    stage: Callable[[Repo], tuple[Settings | Services, str]]
    refused_as: FailureKind | type[TrustkitError]
    message: str  # a regular expression the one-line message matches
    writer_refuses: bool = False  # a writer must not build on it either
    #: on hashed bins, where it differs: a bin is pinned by version only (ADR 0009), so bytes
    #: swapped in place fail its signature, cut ones its parse, endless ones the bin bound and
    #: an older bin its version
    refused_as_binned: FailureKind | None = None
    binned_message: str | None = None
    needs: str | None = None  # a store capability the staging needs (skipped without it)


def _rollback(repo: Repo) -> tuple[Settings, str]:
    old = repo.save()
    repo.sign("v2")
    client = repo.case.client("warm")
    verify_tag(client, repo.tag("v2"))  # this client saw the newer set
    repo.adversary.serve_old(repo.ref.gun, old)
    return client, "v1"


def _fork(repo: Repo) -> tuple[Settings, str]:
    base = repo.save()
    repo.sign("v2")
    client = repo.case.client("warm")
    verify_tag(client, repo.tag("v2"))  # this client saw history A
    repo.adversary.fork(repo.ref.gun, base)
    repo.sign("v3")  # history B: the same versions as A, other content
    return client, "v1"


def _fork_under_a_new_timestamp(repo: Repo) -> tuple[Settings, str]:
    """The fork again, then a server holding the online timestamp key re-signs history B's
    timestamp with a higher version: new to the client, but naming the snapshot version it
    already trusts with other content."""
    client, tag = _fork(repo)
    store, gun = repo.case.store, repo.ref.gun
    root = Metadata.from_bytes(store.read(gun, "root", store.root_version(gun), limit=1 << 20))
    timestamp = Metadata.from_bytes(store.read(gun, "timestamp", None, limit=1 << 16))
    timestamp.signed.version += 1
    timestamp.signatures.clear()
    for keyid in root.signed.roles["timestamp"].keyids:
        timestamp.sign(repo.case.keystore.signer(keyid), append=True)
    served = MetadataFile("timestamp", timestamp.signed.version, timestamp.to_bytes())
    store.publish(gun, [served], expected=store.generation(gun))
    return client, tag


def _swap_digest(repo: Repo) -> tuple[Settings, str]:
    hex_digest = digest_for("v1").split(":")[1].encode()
    repo.adversary.swap_bytes(repo.ref.gun, repo.release_role("v1"), hex_digest, b"f" * 64)
    return repo.case.client("fresh"), "v1"


def _drop(role: str) -> Callable[[Repo], tuple[Settings, str]]:
    def stage(repo: Repo) -> tuple[Settings, str]:
        repo.adversary.drop(repo.ref.gun, repo.release_role("v1") if role == RELEASES else role)
        return repo.case.client("fresh"), "v1"

    return stage


def _truncate(role: str) -> Callable[[Repo], tuple[Settings, str]]:
    def stage(repo: Repo) -> tuple[Settings, str]:
        repo.adversary.truncate(repo.ref.gun, repo.release_role("v1") if role == RELEASES else role)
        return repo.case.client("fresh"), "v1"

    return stage


def _endless(role: str, size: int) -> Callable[[Repo], tuple[Settings, str]]:
    def stage(repo: Repo) -> tuple[Settings, str]:
        target = repo.release_role("v1") if role == RELEASES else role
        repo.adversary.serve_endless(repo.ref.gun, target, size)
        return repo.case.client("fresh"), "v1"

    return stage


def _freeze(repo: Repo) -> tuple[Settings | Services, str]:
    if "timestamp" in repo.case.store.capabilities.server_signed_roles:
        # the server signs every timestamp with its own expiry: the adversary keeps serving
        # an old one, to a client living past that expiry
        frozen = repo.save()
        repo.sign("v2")
        repo.adversary.freeze(repo.ref.gun, frozen)
        expires = json.loads(frozen.files["timestamp.json"])["signed"]["expires"]
        later = datetime.fromisoformat(expires[:19]).replace(tzinfo=UTC) + timedelta(days=1)
        return Services(repo.case.client("fresh"), clock=lambda: later), "v1"
    repo.sign("v2", expiries=Expiries(timestamp=EXPIRED))
    expired = repo.save()
    repo.sign("v3")  # renewed since; the adversary keeps serving the expired timestamp
    repo.adversary.freeze(repo.ref.gun, expired)
    return repo.case.client("fresh"), "v1"


def _mix(role: str) -> Callable[[Repo], tuple[Settings, str]]:
    def stage(repo: Repo) -> tuple[Settings, str]:
        other = repo.save()
        repo.sign(repo.tag_beside("v1"))  # a new version of v1's release role
        target = repo.release_role("v1") if role == RELEASES else role
        repo.adversary.mix_and_match(repo.ref.gun, target, other)
        return repo.case.client("fresh"), "v1"

    return stage


ATTACKS = [
    Attack("rollback", _rollback, FailureKind.ROLLED_BACK, "rollback"),
    Attack("fork", _fork, FailureKind.FORK, "forked: .* different timestamp", needs=STAGED_FORK),
    Attack(
        "fork-snapshot",
        _fork_under_a_new_timestamp,
        FailureKind.FORK,
        "forked: .* snapshot",
        needs=STAGED_FORK,
    ),
    Attack(
        "swap-bytes",
        _swap_digest,
        FailureKind.TAMPERED,
        "hash or length|not validly signed",
        True,
        refused_as_binned=FailureKind.BAD_SIGNATURE,
    ),
    Attack("drop-snapshot", _drop("snapshot"), StorageError, "missing|cannot fetch", True),
    Attack("drop-releases", _drop(RELEASES), StorageError, "missing|cannot fetch", True),
    Attack("truncate-snapshot", _truncate("snapshot"), FailureKind.TAMPERED, "hash or length"),
    Attack(
        "truncate-releases",
        _truncate(RELEASES),
        FailureKind.TAMPERED,
        "hash or length",
        refused_as_binned=FailureKind.UNTRUSTED,
        binned_message="does not verify: Failed to deserialize",
    ),
    Attack(
        "endless-timestamp",
        _endless("timestamp", TIMESTAMP_MAX_BYTES + 1),
        FailureKind.UNTRUSTED,
        "too large",
        True,
    ),
    Attack(
        "endless-releases",
        _endless(RELEASES, TARGETS_MAX_BYTES + 1),
        FailureKind.TAMPERED,  # longer than the length the snapshot records for it
        "hash or length",
        True,
        refused_as_binned=FailureKind.UNTRUSTED,
        binned_message="too large .* 4194304-byte limit",
    ),
    Attack("freeze", _freeze, FailureKind.EXPIRED, r"timestamp metadata of .* expired"),
    Attack("mix-snapshot", _mix("snapshot"), FailureKind.TAMPERED, "hash or length", True),
    Attack(
        "mix-releases",
        _mix(RELEASES),
        FailureKind.TAMPERED,
        "hash or length",
        True,
        refused_as_binned=FailureKind.ROLLED_BACK,
        binned_message="mix-and-match attack.*Expected .*bin.* v2, got v1",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_refused(repo: Repo, attack: Attack) -> None:
    if attack.needs is not None:
        repo.case.require(attack.needs)
    client, tag = attack.stage(repo)
    with pytest.raises(TrustkitError) as caught:
        verify_tag(client, repo.tag(tag))
    error = caught.value
    line = error.one_line()
    assert "\n" not in str(error).strip(), "a refusal is one line"
    assert repo.ref.gun in line
    expected = attack.refused_as
    if repo.layout == "bins" and attack.refused_as_binned is not None:
        expected = attack.refused_as_binned
    if isinstance(expected, FailureKind):
        assert isinstance(error, UntrustedError), line
        assert error.kind is expected, line
    else:
        assert isinstance(error, expected), line
        assert not isinstance(error, UntrustedError)
    message = attack.message
    if repo.layout == "bins" and attack.binned_message is not None:
        message = attack.binned_message
    assert re.search(message, line), line
    if attack.writer_refuses:
        with pytest.raises(TrustkitError) as writer:
            repo.sign(repo.tag_beside("v1"))  # a writer that must rewrite v1's role
        assert isinstance(writer.value, UntrustedError | StorageError), writer.value.one_line()
