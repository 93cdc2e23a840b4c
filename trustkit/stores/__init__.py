"""Backends holding published trust metadata (local directory and memory now; Notary and OCI
later), behind the interfaces of ``trustkit.stores.interface``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustkit._lazy import lazy_exports
from trustkit.stores.interface import (
    MetadataFile,
    MetadataNotFoundError,
    MetadataReader,
    MetadataStore,
    PendingChanges,
    PendingNotFoundError,
    StoreCapabilities,
    check_pending_id,
    escape_gun,
    metadata_filename,
)
from trustkit.stores.local import LocalDirStore
from trustkit.stores.registry import open_store, register_store

if TYPE_CHECKING:
    from trustkit.stores.memory import MemoryStore

# the in-memory store (tests, dry runs) is imported when first named
__getattr__ = lazy_exports(__name__, {"MemoryStore": "trustkit.stores.memory"})

__all__ = [
    "LocalDirStore",
    "MemoryStore",
    "MetadataFile",
    "MetadataNotFoundError",
    "MetadataReader",
    "MetadataStore",
    "PendingChanges",
    "PendingNotFoundError",
    "StoreCapabilities",
    "check_pending_id",
    "escape_gun",
    "metadata_filename",
    "open_store",
    "register_store",
]
