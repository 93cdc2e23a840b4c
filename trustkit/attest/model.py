"""Transitional alias: the findings model moved to ``trustkit.model.findings`` (pure data that
policy and verdicts read, so it sits below the attestation code in the layering)."""

from __future__ import annotations

from trustkit.model.findings import (
    Cvss,
    Finding,
    FixState,
    ScannerInfo,
    ScanReport,
    Severity,
    Suppression,
    VerifiedScan,
    VexStatus,
)

__all__ = [
    "Cvss",
    "Finding",
    "FixState",
    "ScanReport",
    "ScannerInfo",
    "Severity",
    "Suppression",
    "VerifiedScan",
    "VexStatus",
]
