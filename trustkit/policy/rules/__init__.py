"""The policy rules, one module each; ``RULES`` is the registry, in evaluation order.

Adding a rule: write its module (a ``Rule`` subclass: key, order, schema fragment, parse,
evidence needed, check; exposed as ``PLUGINS``) and add its fragment to ``policy.schema.json``
(a test checks the published schema equals the one assembled from the fragments). Modules are
discovered here; nothing else lists them.
"""

from __future__ import annotations

import importlib
import pkgutil

from trustkit.policy.rules.allowlist import AllowlistEntry
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
from trustkit.policy.rules.require_signed import SignedRequirement
from trustkit.policy.rules.trusted_scanners import TrustedScanner


def _discover() -> tuple[Rule, ...]:
    """Every rule module's ``PLUGINS``, in their declared order (no list to keep in sync)."""
    found: list[Rule] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "PLUGINS", ()))
    keys = [r.key for r in found]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"two policy rules share a key: {sorted(keys)}")
    ordered = tuple(sorted(found, key=lambda r: r.order))
    stages = [r.stage for r in ordered]
    if stages != sorted(stages):
        raise RuntimeError("policy rule order interleaves stages")
    return ordered


#: the registry, in evaluation order
RULES: tuple[Rule, ...] = _discover()

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
