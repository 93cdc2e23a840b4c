"""A trust store in process memory: ``memory://NAME`` (the same NAME in one process is the same
store). For tests and for composing stores in memory; nothing survives the process.

It behaves like a store without a shared lock (a registry): ``writing`` is a no-op, so writers
rely on ``publish(expected=...)`` alone, and the contract suite exercises the retry path. Each
collection keeps the files by their consistent-snapshot names plus a head, exactly as the local
directory does, so the same adversary operations apply to both.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from trustkit.errors import InputTooLargeError, StorageError
from trustkit.stores.interface import (
    MAX_PENDING_LISTED,
    MetadataFile,
    MetadataNotFoundError,
    MetadataStore,
    PendingChanges,
    PendingNotFoundError,
    StoreCapabilities,
    check_expected,
    check_pending_id,
    metadata_filename,
)

SCHEME = "memory://"
_MAX_NAME = 200


@dataclass
class MemoryCollection:
    """One collection's state. Tests (the contract suite's adversary) may edit it directly."""

    #: consistent-snapshot file name (``3.targets%2Freleases.json``) -> bytes
    files: dict[str, bytes] = field(default_factory=dict)
    #: the commit point: {"root": N, "timestamp": M}, as the local directory's current.json
    head: dict[str, int] = field(default_factory=dict)
    pending: dict[str, bytes] = field(default_factory=dict)


class MemoryStore(MetadataStore):
    """Published metadata in a dict; every operation is atomic under one lock."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.description = f"memory trust store {name}"
        self.collections: dict[str, MemoryCollection] = {}
        #: held for every read and publish (tests editing ``collections`` may hold it too)
        self.lock = threading.RLock()

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(server_signed_roles=frozenset(), pending_changes=True)

    @property
    def pending(self) -> PendingChanges:
        return _MemoryPending(self)

    # --- reading --------------------------------------------------------------------------
    def _published(self, gun: str) -> MemoryCollection | None:
        collection = self.collections.get(gun)
        return collection if collection is not None and collection.head else None

    def exists(self, gun: str) -> bool:
        with self.lock:
            return self._published(gun) is not None

    def root_version(self, gun: str) -> int:
        with self.lock:
            collection = self._published(gun)
            return 0 if collection is None else collection.head["root"]

    def generation(self, gun: str) -> str | None:
        with self.lock:
            collection = self._published(gun)
            if collection is None:
                return None
            return f"{collection.head['root']}.{collection.head['timestamp']}"

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        with self.lock:
            collection = self._published(gun)
            if collection is None:
                raise MetadataNotFoundError(f"no trust data for {gun} in {self.description}")
            if role == "timestamp":
                if version is not None:
                    raise MetadataNotFoundError(f"{gun}: versioned timestamp requested")
                version = collection.head["timestamp"]
            elif version is None:
                raise MetadataNotFoundError(f"{gun}: {role} is only published by version")
            elif role == "root" and version > collection.head["root"]:
                raise MetadataNotFoundError(f"{gun}: no root version {version}")
            name = metadata_filename(role, version)
            data = collection.files.get(name)
        if data is None:
            raise MetadataNotFoundError(f"{gun}: {name} is missing")
        if len(data) > limit:
            raise InputTooLargeError(f"{role} metadata is larger than {limit} bytes")
        return data

    # --- publishing -----------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, gun: str) -> Iterator[None]:
        yield  # no shared lock, like a registry: publish(expected=...) decides

    def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
        self.check_publishable(gun, files)
        with self.lock:
            check_expected(self.description, gun, expected, self.generation(gun))
            collection = self.collections.setdefault(gun, MemoryCollection())
            root = max(
                [f.version for f in files if f.role == "root"],
                default=collection.head.get("root", 0),
            )
            if root < 1:
                raise StorageError(f"the first publish of {gun} must include root version 1")
            for item in files:
                collection.files[metadata_filename(item.role, item.version)] = bytes(item.data)
            timestamp = next(f.version for f in files if f.role == "timestamp")
            collection.head = {"root": root, "timestamp": timestamp}
            return f"{root}.{timestamp}"


class _MemoryPending(PendingChanges):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def list(self, gun: str) -> builtins.list[str]:
        with self._store.lock:
            collection = self._store.collections.get(gun)
            ids = sorted(collection.pending) if collection is not None else []
        return ids[:MAX_PENDING_LISTED]

    def read(self, gun: str, pending_id: str, *, limit: int) -> bytes:
        check_pending_id(pending_id)
        with self._store.lock:
            collection = self._store.collections.get(gun)
            data = collection.pending.get(pending_id) if collection is not None else None
        if data is None:
            raise PendingNotFoundError(f"no pending change {pending_id} of {gun}")
        if len(data) > limit:
            raise InputTooLargeError(f"pending change is larger than {limit} bytes")
        return data

    def write(self, gun: str, pending_id: str, data: bytes) -> None:
        check_pending_id(pending_id)
        with self._store.lock:
            collection = self._store.collections.setdefault(gun, MemoryCollection())
            collection.pending[pending_id] = bytes(data)

    def remove(self, gun: str, pending_id: str) -> None:
        check_pending_id(pending_id)
        with self._store.lock:
            collection = self._store.collections.get(gun)
            if collection is not None:
                collection.pending.pop(pending_id, None)


_STORES: dict[str, MemoryStore] = {}
_STORES_LOCK = threading.Lock()


def open_memory_store(url: str) -> MemoryStore:
    """``memory://NAME``: one store per NAME for the life of the process."""
    name = url[len(SCHEME) :] if url.lower().startswith(SCHEME) else ""
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        from trustkit.errors import BadInputError

        raise BadInputError(f"invalid memory store URL {url!r}: expected memory://NAME")
    with _STORES_LOCK:
        store = _STORES.get(name)
        if store is None:
            store = _STORES[name] = MemoryStore(name)
        return store


def forget_memory_stores() -> None:
    """Drop every memory store (tests start each case from nothing)."""
    with _STORES_LOCK:
        _STORES.clear()
