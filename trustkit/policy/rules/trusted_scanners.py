"""``trusted_scanners``: only scan attestations signed by these keys count for the policy.

Without it a policy trusts the key store's scanner keys, and only those: a key another policy
names never counts for this one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from trustkit.model.findings import VerifiedScan
from trustkit.policy.rules._keys import KEY_REFERENCE_SCHEMA, NamedKey, load_keys
from trustkit.policy.rules.base import ParseContext, PolicyRun, Rule, ScanSelection, SetAside, Stage

#: a trusted scanner key as a policy names it (kept under its historical name)
TrustedScanner = NamedKey


@dataclass(frozen=True)
class TrustedScanners:
    scanners: tuple[TrustedScanner, ...]
    keyids: frozenset[str]
    implicit: bool = False  # not written: the key store's scanner keys


class TrustedScannersRule(Rule):
    key = "trusted_scanners"
    order = 20
    stage = Stage.SCAN_FILTER
    schema: ClassVar[Mapping[str, Any]] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 64,
        "items": KEY_REFERENCE_SCHEMA,
        "description": (
            "Key ids (64 hex digits) or PEM public key files (relative to the policy file) whose "
            "scan attestations count."
        ),
    }

    def parse(self, value: Any, at: ParseContext) -> TrustedScanners | None:
        scanners = tuple(load_keys(list(value), at, "scanner key"))
        return TrustedScanners(scanners, frozenset(s.keyid for s in scanners))

    def default(self, at: ParseContext) -> TrustedScanners:
        return TrustedScanners((), frozenset(), implicit=True)

    def set_aside(
        self,
        config: TrustedScanners,
        scan: VerifiedScan,
        age: timedelta,
        label: str,
        selection: ScanSelection,
    ) -> tuple[SetAside, str] | None:
        keyids = selection.store_keyids if config.implicit else config.keyids
        if keyids is not None and scan.signer_keyid not in keyids:
            why = f"{label} is signed by key {scan.signer_keyid[:12]}, not a trusted scanner"
            return "untrusted", why
        return None

    def explain_selection(
        self, config: TrustedScanners, selection: ScanSelection, run: PolicyRun
    ) -> None:
        if config.implicit:
            return  # nothing written, nothing to explain beyond require_scan's reasons
        detail = f"{len(config.scanners)} trusted scanner key(s)"
        if selection.untrusted:
            detail += f"; not counted: {'; '.join(selection.untrusted)}"
        run.passed(self.key, detail)


PLUGINS: tuple[Rule, ...] = (TrustedScannersRule(),)
