"""The writer's view of one collection: load the published set, change it, publish new versions.

Pure logic over ``tuf.api.metadata`` objects plus a store and a key store. What a writer loads is
checked (root chain, signatures, hashes and versions) so trustkit never re-signs content it did
not already trust; expiry is not enforced here so that stale metadata can be renewed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from tuf.api import exceptions as tuf_exc
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from trustkit.collections._tuf import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Role,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from trustkit.collections.bins import is_bin
from trustkit.collections.layouts import layout_for
from trustkit.collections.model import (
    BIN_MAX_BYTES,
    ROOT,
    ROOT_MAX_BYTES,
    SNAPSHOT,
    SNAPSHOT_MAX_BYTES,
    TARGETS,
    TARGETS_MAX_BYTES,
    TIMESTAMP,
    TIMESTAMP_MAX_BYTES,
    TOP_LEVEL_ROLES,
    Expiries,
    utcnow,
)
from trustkit.errors import (
    BadInputError,
    InputTooLargeError,
    KeyStoreError,
    StorageError,
    TamperedMetadataError,
    TrustkitError,
    UntrustedError,
)
from trustkit.keys import Signer
from trustkit.stores.interface import MetadataFile, MetadataStore

if TYPE_CHECKING:
    from trustkit.keys import KeyStore

_SERIALIZER = JSONSerializer(compact=True)
_HASH_ALGORITHMS = ["sha256"]
_LIMITS = {
    ROOT: ROOT_MAX_BYTES,
    TIMESTAMP: TIMESTAMP_MAX_BYTES,
    SNAPSHOT: SNAPSHOT_MAX_BYTES,
    TARGETS: TARGETS_MAX_BYTES,
}
_CONTROL_CHARACTER = re.compile(rb"[\x00-\x1f]")
T = TypeVar("T", bound=Signed)


class Collection:
    """One GUN's metadata in memory, with the roles that need a new version."""

    def __init__(
        self,
        gun: str,
        root: Metadata[Root],
        timestamp: Metadata[Timestamp],
        snapshot: Metadata[Snapshot],
        targets: Metadata[Targets],
        *,
        store: MetadataStore | None,
        fresh: bool,
    ) -> None:
        self.gun = gun
        self.root = root
        self.timestamp = timestamp
        self.snapshot = snapshot
        self.targets = targets
        self._store = store
        #: the store generation this set was loaded at (None: new); publish is conditional on it
        self.loaded_generation: str | None = None
        # What was published, to verify lazily-loaded roles and to countersign a new root.
        self._published_root: Root | None = None if fresh else copy.deepcopy(root.signed)
        self._published_delegations = copy.deepcopy(targets.signed.delegations)
        self._delegated: dict[str, Metadata[Targets] | None] = {}
        self._dirty: set[str] = set(TOP_LEVEL_ROLES) if fresh else set()
        self._fresh: set[str] = set(TOP_LEVEL_ROLES) if fresh else set()
        # delegated roles whose new version arrived already signed (co-signing): published as is
        self._presigned: set[str] = set()
        # each edited role's tags as loaded (shallow: edits replace entries, never mutate them)
        self._tags_before: dict[str, dict[str, TargetFile]] = {}
        #: SHA-256 of every published file this set was read from or wrote, by (role, version;
        #: None for the current timestamp): what a kept set checks the store still serves
        self._seen: dict[tuple[str, int | None], bytes] = {}

    # --- loading --------------------------------------------------------------------------
    @classmethod
    def load(cls, store: MetadataStore, gun: str) -> Collection | None:
        """The published collection, verified; None when ``gun`` has none.

        The store's generation is read first, so a publish that lands while this loads makes
        this writer's own publish fail with ConflictError instead of overwriting it."""
        generation = store.generation(gun)
        if generation is None:
            return None
        kept = _LAST_PUBLISHED.take(store, gun, generation)
        if kept is not None:
            return kept
        with _untrusted_on_failure(gun):
            seen: dict[tuple[str, int | None], bytes] = {}

            def read(role: str, version: int | None, limit: int) -> bytes:
                raw = store.read(gun, role, version, limit=limit)
                seen[(role, version)] = hashlib.sha256(raw).digest()
                return raw

            root = _parse(read(ROOT, 1, ROOT_MAX_BYTES), Root)
            root.signed.verify_delegate(ROOT, root.signed_bytes, root.signatures)
            for version in range(2, store.root_version(gun) + 1):
                new = _parse(read(ROOT, version, ROOT_MAX_BYTES), Root)
                root.signed.verify_delegate(ROOT, new.signed_bytes, new.signatures)
                new.signed.verify_delegate(ROOT, new.signed_bytes, new.signatures)
                if new.signed.version != version:
                    raise tuf_exc.BadVersionNumberError(
                        f"root {version} claims version {new.signed.version}"
                    )
                root = new
            timestamp = _parse(read(TIMESTAMP, None, TIMESTAMP_MAX_BYTES), Timestamp)
            _verify(root.signed, TIMESTAMP, timestamp)
            snap_meta = timestamp.signed.snapshot_meta
            raw = read(SNAPSHOT, snap_meta.version, SNAPSHOT_MAX_BYTES)
            snap_meta.verify_length_and_hashes(raw)
            snapshot = _parse(raw, Snapshot)
            _verify(root.signed, SNAPSHOT, snapshot)
            targets_meta = snapshot.signed.meta["targets.json"]
            raw = read(TARGETS, targets_meta.version, TARGETS_MAX_BYTES)
            targets_meta.verify_length_and_hashes(raw)
            targets = _parse(raw, Targets)
            _verify(root.signed, TARGETS, targets)
            _check_version(targets_meta.version, targets, TARGETS)
            _check_version(snap_meta.version, snapshot, SNAPSHOT)
        collection = cls(gun, root, timestamp, snapshot, targets, store=store, fresh=False)
        collection.loaded_generation = generation
        collection._seen = seen
        return collection

    @classmethod
    def create(cls, gun: str, keystore: KeyStore, expiries: Expiries) -> Collection:
        """A new collection with freshly generated root, targets, snapshot and timestamp keys."""
        now = utcnow()
        root = Root(expires=expiries.for_role(ROOT, now), consistent_snapshot=True)
        for role in TOP_LEVEL_ROLES:
            record = keystore.generate(role=role, gun=gun)
            root.add_key(record.public_key, role)
        return cls(
            gun,
            Metadata(root),
            Metadata(Timestamp(expires=expiries.for_role(TIMESTAMP, now))),
            Metadata(Snapshot(expires=expiries.for_role(SNAPSHOT, now))),
            Metadata(Targets(expires=expiries.for_role(TARGETS, now))),
            store=None,
            fresh=True,
        )

    def delegated(self, role: str) -> Metadata[Targets] | None:
        """A delegated role as published, if it verifies against the published delegation."""
        if role not in self._delegated:
            self._delegated[role] = self._load_delegated(role)
        return self._delegated[role]

    def _load_delegated(self, role: str) -> Metadata[Targets] | None:
        meta = self.snapshot.signed.meta.get(f"{role}.json")
        delegator = layout_for(self._published_delegations).delegator_of(role)
        if delegator == TARGETS:
            delegations = self._published_delegations
        else:  # a bin: verified against its delegating role as published
            parent = self.delegated(delegator)
            delegations = None if parent is None else parent.signed.delegations
        if meta is None or self._store is None or delegations is None:
            return None
        if not _delegates(delegations, role):
            return None
        with _untrusted_on_failure(self.gun):
            limit = BIN_MAX_BYTES if is_bin(role) else TARGETS_MAX_BYTES
            raw = self._store.read(self.gun, role, meta.version, limit=limit)
            self._seen[(role, meta.version)] = hashlib.sha256(raw).digest()
            meta.verify_length_and_hashes(raw)
            md = _parse(raw, Targets)
            _check_version(meta.version, md, role)
        holder = Targets(delegations=delegations)
        result = holder.get_verification_result(role, md.signed_bytes, md.signatures)
        if result.verified:
            return md
        if set(md.signatures) & set(result.unsigned):
            # a signature by a key the role still lists that does not verify: these bytes are
            # not what was signed (a bin is pinned by version and length, not by hash)
            raise TamperedMetadataError(
                f"refusing to write to {self.gun}: {role} does not match its signatures"
            )
        # e.g. its only signer was removed: its tags no longer count and must be re-signed
        return None

    # --- reading the current (possibly edited) state ---------------------------------------
    @property
    def delegations(self) -> Delegations | None:
        return self.targets.signed.delegations

    def delegated_roles(self) -> dict[str, DelegatedRole]:
        delegations = self.delegations
        return dict(delegations.roles or {}) if delegations is not None else {}

    def keyids_of(self, role: str) -> list[str]:
        if role in TOP_LEVEL_ROLES:
            return list(self.root.signed.roles[role].keyids)
        return list(self.delegation_of(role).keyids)

    def threshold_of(self, role: str) -> int:
        if role in TOP_LEVEL_ROLES:
            return self.root.signed.roles[role].threshold
        return self.delegation_of(role).threshold

    def delegator_targets(self, role: str) -> Targets:
        """The current (possibly edited) targets of the role that delegates to ``role``:
        ``targets``, or for a bin its delegating role. KeyError when nothing delegates it."""
        delegator = layout_for(self.delegations).delegator_of(role)
        parent = self.current_targets(delegator)
        if parent is None:
            raise KeyError(role)
        return parent

    def delegation_of(self, role: str) -> Role:
        """The current delegation of delegated ``role`` (its keys and threshold); KeyError
        when nothing delegates it."""
        try:
            return self.delegator_targets(role).get_delegated_role(role)
        except ValueError:
            raise KeyError(role) from None

    def published_version(self, role: str) -> int:
        """The version of ``role`` in the published snapshot (0 when never published)."""
        meta = self.snapshot.signed.meta.get(f"{role}.json")
        return 0 if meta is None else int(meta.version)

    def dirty_roles(self) -> list[str]:
        return sorted(self._dirty)

    def short_of_threshold(self, keystore: KeyStore) -> dict[str, tuple[int, int]]:
        """Changed roles this key store cannot sign alone: role -> (local keys, threshold)."""
        short = {}
        for role in self._dirty - self._presigned:
            if role == ROOT:
                continue  # root has its own rules (old and new root): publish decides
            threshold = self.threshold_of(role)
            held = len(local_keyids(keystore, self.keyids_of(role)))
            if held < threshold:
                short[role] = (held, threshold)
        return short

    def can_publish(self, keystore: KeyStore) -> bool:
        """Whether this key store holds enough snapshot and timestamp keys to publish."""
        return all(
            len(local_keyids(keystore, self.keyids_of(role))) >= self.threshold_of(role)
            for role in (SNAPSHOT, TIMESTAMP)
        )

    def sign_proposal(
        self, role: str, keystore: KeyStore, expiries: Expiries, now: datetime
    ) -> Metadata[Targets]:
        """The next version of delegated ``role``, signed with whatever keys are local
        (possibly fewer than its threshold): the first half of a co-signed change."""
        md = self._delegated.get(role)
        if role in TOP_LEVEL_ROLES or md is None or role not in self._dirty:
            raise BadInputError(f"{role} is not an edited delegated role")
        self._new_version(role, md, expiries, now)
        for signer in _local_signers(keystore, self.keyids_of(role)):
            md.sign(signer, append=True)
        return md

    def set_presigned(self, role: str, md: Metadata[Targets]) -> None:
        """Publish ``md`` as the next version of delegated ``role`` exactly as signed; publish
        refuses it unless its signatures meet the role's threshold."""
        if role in TOP_LEVEL_ROLES:
            raise BadInputError(f"{role} is not a delegated role")
        try:
            self.delegation_of(role)  # a bin is delegated by its delegating role
        except KeyError:
            raise BadInputError(f"{role} is not a delegated role") from None
        self._delegated[role] = md
        self._dirty.add(role)
        self._presigned.add(role)

    def published_tags(self, role: str) -> dict[str, TargetFile]:
        """A delegated role's tags as published (before this writer's edits)."""
        if role in self._tags_before:
            return dict(self._tags_before[role])
        current = self.current_targets(role)
        return dict(current.targets) if current is not None else {}

    def current_targets(self, role: str) -> Targets | None:
        if role == TARGETS:
            return self.targets.signed
        md = self.delegated(role)
        return None if md is None else md.signed

    # --- editing --------------------------------------------------------------------------
    def edit_root(self) -> Root:
        self._dirty.add(ROOT)
        return self.root.signed

    def edit_targets(self) -> Targets:
        self._dirty.add(TARGETS)
        return self.targets.signed

    def edit_role(self, role: str) -> Targets:
        """The targets of ``role`` for editing (a delegated role is created when missing)."""
        if role in TOP_LEVEL_ROLES:
            if role != TARGETS:
                raise BadInputError(f"{role} cannot be edited as targets metadata")
            return self.edit_targets()
        md = self.delegated(role)
        if role not in self._tags_before:
            self._tags_before[role] = dict(md.signed.targets) if md is not None else {}
        if md is None:
            # continue the published version numbering: snapshot entries are never removed
            meta = self.snapshot.signed.meta.get(f"{role}.json")
            version = meta.version + 1 if meta is not None else 1
            md = Metadata(Targets(version=version))
            self._delegated[role] = md
            self._fresh.add(role)
        self._dirty.add(role)
        return md.signed

    def renew(self, role: str) -> None:
        """Give ``role`` a new version (and so a new expiry) without changing its content."""
        if role == ROOT:
            self.edit_root()
        elif role in (SNAPSHOT, TIMESTAMP):
            pass  # always renewed
        else:
            self.edit_role(role)

    # --- publishing -----------------------------------------------------------------------
    def publish(self, keystore: KeyStore, expiries: Expiries, store: MetadataStore) -> list[str]:
        """Sign every changed role plus snapshot and timestamp (those the store does not sign
        itself, per its capabilities) and publish them as one set, conditional on the store
        still being at the generation this set was loaded at (``ConflictError`` otherwise:
        nothing is published; reload and re-apply)."""
        now = utcnow()
        files: list[MetadataFile] = []
        changed: list[str] = []
        reusable = self._delegations_unchanged()
        delegated = sorted(r for r in self._dirty if r not in TOP_LEVEL_ROLES)
        for role in [*delegated, *([TARGETS] if TARGETS in self._dirty else [])]:
            md = self.targets if role == TARGETS else self._delegated[role]
            assert md is not None
            if role in self._presigned:
                self._check_presigned(role, md)
                data = md.to_bytes(_SERIALIZER)
            else:
                self._new_version(role, md, expiries, now)
                data = self._sign(role, md, keystore)
            files.append(MetadataFile(role, md.signed.version, data))
            # a bin is pinned by version (its signature does the rest, BIN_MAX_BYTES bounds
            # its download): a hash and a length for each of a thousand bins would make
            # every client's snapshot twice as large (ADR 0009)
            self.snapshot.signed.meta[f"{role}.json"] = (
                MetaFile(md.signed.version)
                if is_bin(role)
                else MetaFile.from_data(md.signed.version, data, _HASH_ALGORITHMS)
            )
            changed.append(role)
        if ROOT in self._dirty:
            self._new_version(ROOT, self.root, expiries, now)
            self._sign_root(keystore)
            files.append(MetadataFile(ROOT, self.root.signed.version, self.root.to_bytes()))
            changed.append(ROOT)
        # a server that signs snapshot (and so timestamp) itself makes them from what we send
        server_signed = store.capabilities.server_signed_roles
        if SNAPSHOT in server_signed and TIMESTAMP not in server_signed:
            raise StorageError(
                f"{store.description} signs snapshot but not timestamp: a writer cannot pin a "
                "snapshot it does not sign"
            )
        if SNAPSHOT not in server_signed:
            for name, meta in self.snapshot.signed.meta.items():
                if meta.length is not None and is_bin(name):
                    meta.length = None  # pinned by version only, as bins are written now
            self._new_version(SNAPSHOT, self.snapshot, expiries, now)
            snapshot_bytes = self._sign(SNAPSHOT, self.snapshot, keystore)
            files.append(MetadataFile(SNAPSHOT, self.snapshot.signed.version, snapshot_bytes))
            self.timestamp.signed.snapshot_meta = MetaFile.from_data(
                self.snapshot.signed.version, snapshot_bytes, _HASH_ALGORITHMS
            )
        if TIMESTAMP not in server_signed:
            self._new_version(TIMESTAMP, self.timestamp, expiries, now)
            timestamp_bytes = self._sign(TIMESTAMP, self.timestamp, keystore)
            files.append(MetadataFile(TIMESTAMP, self.timestamp.signed.version, timestamp_bytes))
        self.loaded_generation = store.publish(self.gun, files, expected=self.loaded_generation)
        self._store = store
        self._record_published(files)
        self._dirty.clear()
        self._fresh.clear()
        self._presigned.clear()
        self._tags_before.clear()
        if reusable and TIMESTAMP not in server_signed:
            self._forget_unchanged_leaves(changed)
            _LAST_PUBLISHED.keep(store, self)
        return changed

    def _record_published(self, files: Sequence[MetadataFile]) -> None:
        for item in files:
            version = None if item.role == TIMESTAMP else item.version
            for key in [k for k in self._seen if k[0] == item.role and k[0] != ROOT]:
                del self._seen[key]  # a role's older version is no longer part of the set
            self._seen[(item.role, version)] = hashlib.sha256(item.data).digest()

    def _forget_unchanged_leaves(self, changed: list[str]) -> None:
        """Keep only the delegating roles and the roles just written, so a kept set stays the
        size of one change, not of every role ever read."""
        for role, md in list(self._delegated.items()):
            if md is None or (md.signed.delegations is None and role not in changed):
                del self._delegated[role]
                for key in [k for k in self._seen if k[0] == role]:
                    del self._seen[key]

    def still_served_by(self, store: MetadataStore) -> bool:
        """Whether ``store`` serves byte for byte every file this set was built from."""
        try:
            for (role, version), digest in self._seen.items():
                limit = _LIMITS.get(role, TARGETS_MAX_BYTES)
                if hashlib.sha256(store.read(self.gun, role, version, limit=limit)).digest() != (
                    digest
                ):
                    return False
        except TrustkitError:
            return False  # a full load reports it
        return True

    def _delegations_unchanged(self) -> bool:
        """Whether this change leaves root and every delegation as published: only leaf roles
        (tags) change. Only then is the published set kept for this process's next writer: the
        roles it holds stay verified against delegations that did not move."""
        if ROOT in self._dirty or TARGETS in self._dirty:
            return False
        for role in self._dirty:
            md = self._delegated.get(role)
            if md is None or md.signed.delegations is not None:
                return False
        return True

    def _check_presigned(self, role: str, md: Metadata[Targets]) -> None:
        expected = self.published_version(role) + 1
        if md.signed.version != expected:
            raise UntrustedError(
                f"{role} of {self.gun}: the co-signed version is {md.signed.version}, "
                f"the next one is {expected}"
            )
        try:
            self.delegator_targets(role).verify_delegate(role, md.signed_bytes, md.signatures)
        except tuf_exc.UnsignedMetadataError as exc:
            raise UntrustedError(f"{role} of {self.gun} is not signed enough: {exc}") from None

    def _new_version(self, role: str, md: Metadata[Any], expiries: Expiries, now: datetime) -> None:
        if role not in self._fresh:
            md.signed.version += 1
        md.signed.expires = expiries.for_role(role, now)
        md.signatures.clear()

    def _sign(self, role: str, md: Metadata[Any], keystore: KeyStore) -> bytes:
        """Sign ``role`` with every local key of it (refused below its threshold); returns the
        file's bytes."""
        keyids = self.keyids_of(role)
        threshold = self.threshold_of(role)
        signers = _local_signers(keystore, keyids)
        if len(signers) < threshold:
            raise KeyStoreError(
                f"cannot sign {role} of {self.gun}: it needs {threshold} of its keys and "
                f"{len(signers)} are in this key store",
                hint=(
                    "load the role's private key with 'trustkit trust key load'"
                    if role in TOP_LEVEL_ROLES
                    else "'trustkit trust sign' leaves a pending change for the other signers "
                    "to approve"
                ),
            )
        # the canonical bytes are made once: each signer signs them and the file embeds them
        # (a snapshot of a thousand bins costs milliseconds per encoding)
        payload = md.signed_bytes
        for signer in signers:
            try:
                signature = signer.sign(payload)
            except Exception as exc:  # as Metadata.sign reports a signer's failure
                raise tuf_exc.UnsignedMetadataError(f"Failed to sign: {exc}") from exc
            md.signatures[signature.keyid] = signature
        return _file_bytes(md, payload)

    def _sign_root(self, keystore: KeyStore) -> None:
        """A new root is signed by the new root keys and by the root it replaces."""
        new_ids = self.keyids_of(ROOT)
        old_ids = list(self._published_root.roles[ROOT].keyids) if self._published_root else []
        for signer in _local_signers(keystore, list(dict.fromkeys([*old_ids, *new_ids]))):
            self.root.sign(signer, append=True)
        try:
            if self._published_root is not None:
                self._published_root.verify_delegate(
                    ROOT, self.root.signed_bytes, self.root.signatures
                )
            self.root.signed.verify_delegate(ROOT, self.root.signed_bytes, self.root.signatures)
        except tuf_exc.UnsignedMetadataError as exc:
            raise KeyStoreError(
                f"cannot sign root of {self.gun}: {exc} (the root key is not in this key store)",
                hint="load the root key with 'trustkit trust key load'",
            ) from None


class _PublishedSets:
    """The last collection this process published per (store, GUN), handed to the next writer
    of the same collection instead of reading and verifying the whole set again.

    A writer signing tag after tag (bulk signing, the hook server, CI) otherwise spends most of
    each sign re-parsing and re-verifying the snapshot it has just written. A kept set is only
    used when the store is still at the generation it published AND serves, byte for byte,
    every file the set was built from (roots, timestamp, snapshot, targets, the delegated roles
    it holds): what a full load would verify are then the very bytes this set verified or
    signed, so the outcome is the same, and any other writer's publish, rollback or tampering
    means a full load (which refuses what does not verify). Hashing those files is far cheaper
    than parsing them. A set is taken, not shared: a writer that fails half-way never returns
    it, and only changes that leave root and every delegation unchanged are kept."""

    LIMIT = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: OrderedDict[tuple[str, str], tuple[str, Collection]] = OrderedDict()

    def keep(self, store: MetadataStore, collection: Collection) -> None:
        generation = collection.loaded_generation
        if generation is None:
            return
        with self._lock:
            key = (store.description, collection.gun)
            self._sets[key] = (generation, collection)
            self._sets.move_to_end(key)
            while len(self._sets) > self.LIMIT:
                self._sets.popitem(last=False)

    def take(self, store: MetadataStore, gun: str, generation: str) -> Collection | None:
        with self._lock:
            kept = self._sets.pop((store.description, gun), None)
        if kept is None or kept[0] != generation or not kept[1].still_served_by(store):
            return None
        collection = kept[1]
        collection._store = store
        return collection

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()


_LAST_PUBLISHED = _PublishedSets()


def forget_published() -> None:
    """Drop every kept set (tests that edit a store behind this process's back)."""
    _LAST_PUBLISHED.clear()


def _file_bytes(md: Metadata[Any], signed_bytes: bytes) -> bytes:
    """``md`` as a file, around the canonical ``signed_bytes`` its signatures cover: the same
    document ``md.to_bytes`` writes (sorted keys, no spaces), without encoding ``signed`` again."""
    if md.unrecognized_fields or _CONTROL_CHARACTER.search(signed_bytes):
        # canonical JSON leaves control characters (a PEM key's newlines) unescaped, which
        # JSON parsers refuse: such metadata is written by the plain serializer
        return md.to_bytes(_SERIALIZER)
    signatures = json.dumps(
        [signature.to_dict() for signature in md.signatures.values()],
        separators=(",", ":"),
        sort_keys=True,
    )
    return b'{"signatures":' + signatures.encode() + b',"signed":' + signed_bytes + b"}"


def _delegates(delegations: Delegations, role: str) -> bool:
    if delegations.roles is not None:
        return role in delegations.roles
    succinct = delegations.succinct_roles
    return succinct is not None and succinct.is_delegated_role(role)


def _local_signers(keystore: KeyStore, keyids: list[str]) -> list[Signer]:
    signers = []
    for keyid in keyids:
        try:
            present = keystore.has_private(keyid)
        except KeyStoreError:
            present = False
        if present:
            signers.append(keystore.signer(keyid))
    return signers


def local_keyids(keystore: KeyStore, keyids: Iterable[str]) -> list[str]:
    found = []
    for keyid in keyids:
        try:
            if keystore.has_private(keyid):
                found.append(keyid)
        except KeyStoreError:
            continue
    return found


def _parse(raw: bytes, kind: type[Any]) -> Metadata[Any]:
    md = Metadata.from_bytes(raw)
    if not isinstance(md.signed, kind):
        raise tuf_exc.RepositoryError(f"expected {kind.type} metadata, got {md.signed.type}")
    return md


def _verify(root: Root, role: str, md: Metadata[Any]) -> None:
    root.verify_delegate(role, md.signed_bytes, md.signatures)


def _check_version(expected: int, md: Metadata[Any], role: str) -> None:
    if md.signed.version != expected:
        raise tuf_exc.BadVersionNumberError(
            f"{role} is version {md.signed.version}, snapshot expects {expected}"
        )


class _untrusted_on_failure:
    """Turn a failure to verify published metadata into one clear refusal."""

    def __init__(self, gun: str) -> None:
        self.gun = gun

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            return
        if isinstance(exc, InputTooLargeError):
            raise UntrustedError(
                f"published trust data of {self.gun} is too large: {exc}"
            ) from None
        if isinstance(exc, tuf_exc.RepositoryError | DeserializationError | ValueError | KeyError):
            raise UntrustedError(
                f"refusing to write to {self.gun}: its published trust data does not verify ({exc})"
            ) from None
        if isinstance(exc, OSError):
            raise StorageError(f"cannot read trust data of {self.gun}: {exc}") from None
