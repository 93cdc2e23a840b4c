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

from trustkit.collections._canonical import install as _install_canonical

# python-tuf signs and verifies canonical JSON: trustkit's encoder makes the same bytes at C
# speed (most of a cold verify otherwise; property-tested in tests/test_canonical.py)
_install_canonical()

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
