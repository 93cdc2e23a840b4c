"""Backends holding published trust metadata (local directory and memory now; Notary and OCI
later), behind the interfaces of ``trustkit.stores.interface``."""

from __future__ import annotations

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
from trustkit.stores.memory import MemoryStore
from trustkit.stores.registry import open_store, register_store

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
