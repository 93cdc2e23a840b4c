"""Where trust metadata lives: small interfaces every backend implements.

A store holds, per collection (GUN), the published TUF metadata files. It never decides trust:
the client verifies whatever a store returns. The interface is split by what a caller does:

- ``MetadataReader``: bounded reads of the published set (verifiers need nothing else), so a
  hostile or broken store cannot make trustkit read endless data;
- publishing (``MetadataStore.publish``) is optimistic: a writer publishes against the
  ``generation`` it read and gets ``ConflictError`` when another writer got in first. No store
  needs a lock shared between machines (registries have no compare-and-swap on tags);
  ``writing(gun)`` is an optional hint a writer MAY hold around load + publish (the local
  directory's file lock, so local writers queue instead of retrying);
- ``StoreCapabilities``: what a store does beyond that is declared, never defaulted: roles the
  server signs itself (a Notary server's timestamp and snapshot) and whether it can hold pending
  (co-signed) changes, which live behind their own small interface, ``PendingChanges``.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from urllib.parse import quote

# re-exported: they were defined here before errors.py held every public error class
from trustkit.errors import (
    ConflictError,
    MetadataNotFoundError,
    PendingNotFoundError,
    StorageError,
)

_MAX_ESCAPED_NAME = 200
#: a pending change's id: lowercase hex, so it is always one safe file-name component
PENDING_ID_RE = re.compile(r"\A[0-9a-f]{12,64}\Z")
#: how many pending changes of one collection are listed at most (a store is untrusted)
MAX_PENDING_LISTED = 1000

# Bounds on every metadata read (bytes). 10,000 tags take about 1.3 MB of targets metadata.
ROOT_MAX_BYTES = 512 * 1024
TIMESTAMP_MAX_BYTES = 16 * 1024
SNAPSHOT_MAX_BYTES = 2 * 1024 * 1024
TARGETS_MAX_BYTES = 16 * 1024 * 1024
#: a hashed bin (~20 KB at 100,000 tags and 512 bins); snapshot pins bins by version only
BIN_MAX_BYTES = 4 * 1024 * 1024

__all__ = [
    "MAX_PENDING_LISTED",
    "PENDING_ID_RE",
    "MetadataFile",
    "MetadataNotFoundError",
    "MetadataReader",
    "MetadataStore",
    "PendingChanges",
    "PendingNotFoundError",
    "StoreCapabilities",
    "check_expected",
    "check_pending_id",
    "escape_gun",
    "metadata_filename",
]


def check_pending_id(pending_id: str) -> str:
    if not PENDING_ID_RE.match(pending_id):
        from trustkit.errors import BadInputError

        raise BadInputError(f"invalid pending change id {pending_id!r}: expected lowercase hex")
    return pending_id


@dataclass(frozen=True)
class MetadataFile:
    """One signed metadata file of a new version set, ready to publish."""

    role: str
    version: int
    data: bytes


@dataclass(frozen=True)
class StoreCapabilities:
    """What a store does beyond reading and publishing. Every store states both, explicitly."""

    #: roles the server signs itself (never published by a writer): a Notary server's
    #: timestamp and snapshot; empty for stores that only keep what writers sign
    server_signed_roles: frozenset[str]
    #: whether ``MetadataStore.pending`` can hold co-signed changes waiting for signatures
    pending_changes: bool


def escape_gun(gun: str) -> str:
    """A collection name as one safe file-name component (no '/', no '..', bounded length)."""
    escaped = quote(gun, safe="")
    if escaped in {"", ".", ".."}:
        raise StorageError(f"invalid collection name {gun!r}")
    if len(escaped) > _MAX_ESCAPED_NAME:
        digest = hashlib.sha256(gun.encode()).hexdigest()
        escaped = f"{escaped[:100]}~{digest}"
    return escaped


def metadata_filename(role: str, version: int | None) -> str:
    """TUF consistent-snapshot file name, e.g. ``3.targets%2Freleases.json``."""
    name = quote(role, safe="")
    return f"{name}.json" if version is None else f"{version}.{name}.json"


class MetadataReader(ABC):
    """The published metadata of each collection, read with a bound on every file."""

    #: shown in messages, e.g. "local trust store /home/u/.servin/trust/server"; also part of
    #: the client's in-process cache key, so two different stores never share a description
    description: str = "trust store"

    @abstractmethod
    def exists(self, gun: str) -> bool:
        """Whether a collection has been published for ``gun``."""

    @abstractmethod
    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        """The published bytes of ``role`` at ``version`` (None: the current timestamp).

        Raises MetadataNotFoundError when absent, InputTooLargeError when larger than ``limit``,
        StorageError (or UnreachableError) for I/O problems.
        """

    @abstractmethod
    def root_version(self, gun: str) -> int:
        """The newest published root version (0 when the collection does not exist)."""

    @abstractmethod
    def generation(self, gun: str) -> str | None:
        """An opaque, unverified token that changes whenever ``gun`` is published (None when
        it does not exist). Writers hand it back to ``publish(expected=...)``; caches key on
        it. Never a trust decision."""

    def expect_targets(self, gun: str, targets: Sequence[str]) -> None:  # noqa: B027
        """A hint: a lookup of ``targets`` (target paths, e.g. tags) follows in the refresh
        starting now. A store that serves files remotely may start fetching what that lookup
        reads, so it arrives while the top-level roles are verified; nothing fetched is trusted
        until the client verifies it. Does nothing by default."""


class PendingChanges(ABC):
    """Co-signing: changes to a role with threshold > 1 wait here, partly signed, until enough
    signers approve them. Entries are unpublished and untrusted: clients never read them, and
    writers verify them against the published metadata before counting a signature."""

    @abstractmethod
    def list(self, gun: str) -> builtins.list[str]:
        """The ids of ``gun``'s pending changes (unverified, at most MAX_PENDING_LISTED), in
        id order; an empty list when there are none."""

    @abstractmethod
    def read(self, gun: str, pending_id: str, *, limit: int) -> bytes:
        """The stored bytes of one pending change (PendingNotFoundError when absent,
        InputTooLargeError when larger than ``limit``)."""

    @abstractmethod
    def write(self, gun: str, pending_id: str, data: bytes) -> None:
        """Create or replace one pending change atomically."""

    @abstractmethod
    def remove(self, gun: str, pending_id: str) -> None:
        """Drop one pending change; absent is not an error."""


class MetadataStore(MetadataReader):
    """A trust server: reading, optimistic publishing and declared capabilities."""

    @property
    @abstractmethod
    def capabilities(self) -> StoreCapabilities:
        """What this store does beyond reading and publishing."""

    @abstractmethod
    def writing(self, gun: str) -> AbstractContextManager[None]:
        """Optionally held by a writer around load + publish of ``gun``.

        A store with a cheap local lock (the local directory) takes it here, so concurrent
        writers queue instead of conflicting, and recovers a crashed publish on entry. Stores
        without one return a no-op context: writers then rely on ``publish(expected=...)``.
        Correctness never depends on holding it.
        """

    @abstractmethod
    def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
        """Publish one consistent set of new versions atomically; returns the new generation.

        ``expected`` is the generation the writer loaded (None: the collection must not exist
        yet). When the store's generation is different, nothing is published and
        ``ConflictError`` is raised: reload, re-apply the change, publish again. ``files``
        include the new timestamp unless the server signs it (``capabilities``); readers see
        either the previous set or all of ``files``, never a mix.
        """

    @property
    def pending(self) -> PendingChanges:
        """Where co-signed changes wait; only for stores declaring ``pending_changes``."""
        raise StorageError(
            f"{self.description} cannot hold pending (co-signed) changes",
            hint="use a trust store that supports co-signing, e.g. a local directory",
        )

    def check_publishable(self, gun: str, files: Sequence[MetadataFile]) -> None:
        """Refuse a set a writer must not publish here: server-signed roles, or no timestamp
        when the writer signs it."""
        server_signed = self.capabilities.server_signed_roles
        for item in files:
            if item.role in server_signed:
                raise StorageError(
                    f"{self.description} signs {item.role} itself: a writer cannot publish it"
                )
        if "timestamp" not in server_signed and not any(f.role == "timestamp" for f in files):
            raise StorageError("a publish must include a new timestamp")


def check_expected(description: str, gun: str, expected: str | None, current: str | None) -> None:
    """Raise ConflictError when the generation a writer read is no longer current."""
    if expected == current:
        return
    raise ConflictError(
        f"{gun} changed in {description} while this change was being prepared "
        f"(another writer published first; expected {expected or 'no collection'}, "
        f"found {current or 'no collection'})",
        hint="run the command again: it reloads the new trust data and re-applies the change",
    )
