"""Backends holding published trust metadata (local directory now; Notary and OCI later)."""

from __future__ import annotations

from trustkit.stores.interface import (
    MetadataFile,
    MetadataNotFoundError,
    MetadataStore,
    PendingNotFoundError,
    check_pending_id,
    escape_gun,
    metadata_filename,
)
from trustkit.stores.local import LocalDirStore
from trustkit.stores.registry import open_store, register_store

__all__ = [
    "LocalDirStore",
    "MetadataFile",
    "MetadataNotFoundError",
    "MetadataStore",
    "PendingNotFoundError",
    "check_pending_id",
    "escape_gun",
    "metadata_filename",
    "open_store",
    "register_store",
]
