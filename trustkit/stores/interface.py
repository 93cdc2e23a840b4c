"""Where trust metadata lives: one small interface for every backend.

A store holds, per collection (GUN), the published TUF metadata files and serialises writers.
It never decides trust: the client verifies whatever a store returns. Every read is bounded, so
a hostile or broken store cannot make trustkit read endless data.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from urllib.parse import quote

from trustkit.errors import StorageError

_MAX_ESCAPED_NAME = 200
#: a pending change's id: lowercase hex, so it is always one safe file-name component
PENDING_ID_RE = re.compile(r"^[0-9a-f]{12,64}$")


class MetadataNotFoundError(StorageError):
    """The store has no such metadata file (or no such collection)."""


class PendingNotFoundError(MetadataNotFoundError):
    """The store has no pending change with that id."""


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


class MetadataStore(ABC):
    """A trust server: published metadata per collection, plus a writer lock."""

    #: shown in messages, e.g. "local store /home/u/.servin/trust/server"
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

    def generation(self, gun: str) -> str | None:
        """A cheap, unverified token that changes whenever ``gun`` is published (None when it
        does not exist). For cache keys only: never a trust decision."""
        import hashlib

        try:
            current = self.read(gun, "timestamp", None, limit=1 << 16)
        except MetadataNotFoundError:
            return None
        return hashlib.sha256(current).hexdigest()

    @abstractmethod
    def writer_lock(self, gun: str) -> AbstractContextManager[None]:
        """Serialise writers of one collection; on entry, recover or discard a crashed publish."""

    @abstractmethod
    def publish(self, gun: str, files: list[MetadataFile]) -> None:
        """Publish one consistent set of new versions atomically (caller holds writer_lock).

        ``files`` must contain the new timestamp; readers see either the previous set or all of
        ``files``, never a mix.
        """

    # --- pending changes (co-signing) -----------------------------------------------------
    # A change to a role with threshold > 1 waits here, partly signed, until enough signers
    # approve it. Pending entries are unpublished and untrusted: clients never read them, and
    # writers verify them against the published metadata before counting a signature.
    def list_pending(self, gun: str) -> list[str]:
        """The ids of ``gun``'s pending changes (unverified), oldest file name order."""
        return []

    def read_pending(self, gun: str, pending_id: str, *, limit: int) -> bytes:
        """The stored bytes of one pending change (PendingNotFoundError when absent)."""
        raise PendingNotFoundError(f"no pending change {pending_id} of {gun}")

    def write_pending(self, gun: str, pending_id: str, data: bytes) -> None:
        """Create or replace one pending change atomically (caller holds writer_lock)."""
        raise StorageError(f"{self.description} cannot hold pending (co-signed) changes")

    def remove_pending(self, gun: str, pending_id: str) -> None:
        """Drop one pending change (caller holds writer_lock); absent is not an error."""
        return None
