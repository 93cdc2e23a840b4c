"""The policy rules, one module each; ``RULES`` is the registry, in evaluation order.

Adding a rule: write its module (a ``Rule`` subclass: key, schema fragment, parse, evidence
needed, check), list it here, and add its fragment to ``policy.schema.json`` (a test checks the
published schema equals the one assembled from the fragments).
"""

from __future__ import annotations

from trustkit.policy.rules.allowlist import AllowlistEntry, AllowlistRule
from trustkit.policy.rules.base import (
    Check,
    Evidence,
    ParseContext,
    PolicyRun,
    Rule,
    ScanSelection,
    SignatureContext,
    Stage,
)
from trustkit.policy.rules.compose import AllOf, AnyOf
from trustkit.policy.rules.denylist import DenylistRule
from trustkit.policy.rules.ignore_unfixed import IgnoreUnfixed
from trustkit.policy.rules.max_scan_age import MaxScanAge
from trustkit.policy.rules.require_scan import RequireScan
from trustkit.policy.rules.require_signed import RequireSigned, SignedRequirement
from trustkit.policy.rules.severity import SeverityRule
from trustkit.policy.rules.trusted_scanners import TrustedScanner, TrustedScannersRule

RULES: tuple[Rule, ...] = (
    RequireSigned(),
    AnyOf(),
    AllOf(),
    TrustedScannersRule(),
    MaxScanAge(),
    RequireScan(),
    DenylistRule(),
    SeverityRule(),
    IgnoreUnfixed(),
    AllowlistRule(),
)

__all__ = [
    "RULES",
    "AllowlistEntry",
    "Check",
    "Evidence",
    "ParseContext",
    "PolicyRun",
    "Rule",
    "ScanSelection",
    "SignatureContext",
    "SignedRequirement",
    "Stage",
    "TrustedScanner",
]
