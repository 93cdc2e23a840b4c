"""Transitional alias of ``trustkit.pipeline`` (the decision and the push gate moved there)."""

from __future__ import annotations

from trustkit.pipeline.check import (
    check_image,
    check_trust,
    fetch_scans,
    require_allowed,
    trust_once_signed,
)
from trustkit.pipeline.flows import push_gate

__all__ = [
    "check_image",
    "check_trust",
    "fetch_scans",
    "push_gate",
    "require_allowed",
    "trust_once_signed",
]
