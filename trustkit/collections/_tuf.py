"""python-tuf's metadata classes, imported in one place.

``tuf.api.metadata`` re-exports them implicitly, which mypy --strict rejects at every import.
"""

from __future__ import annotations

from tuf.api.metadata import (  # type: ignore[attr-defined]
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Role,
    Root,
    Signed,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)

__all__ = [
    "DelegatedRole",
    "Delegations",
    "MetaFile",
    "Metadata",
    "Role",
    "Root",
    "Signed",
    "Snapshot",
    "SuccinctRoles",
    "TargetFile",
    "Targets",
    "Timestamp",
]
