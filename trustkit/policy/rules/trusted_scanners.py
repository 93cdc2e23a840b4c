"""``trusted_scanners``: only scan attestations signed by these keys count for the policy.

A scan counts for a policy only through a key *that* policy names: a key another policy names
never counts for this one, and the key store's scanner keys are not trusted implicitly (loading a
published demo key must not make it trusted everywhere). A policy without ``trusted_scanners``
therefore fails its scan rules closed, with a reason saying so. (Library callers that evaluate
scans they verified themselves pass ``store_keyids=None``: every verified scan counts.)"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from trustkit.model.findings import VerifiedScan
from trustkit.policy.rules._keys import KEY_REFERENCE_SCHEMA, NamedKey, load_keys
from trustkit.policy.rules.base import ParseContext, PolicyRun, Rule, ScanSelection, SetAside, Stage

_NO_KEYS = (
    "the policy names no trusted_scanners, so no scan counts for it "
    "(scanner keys are trusted only by the policies that name them)"
)

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
        keyids: frozenset[str] | None = config.keyids
        if config.implicit:  # None: a library caller's own verified scans all count
            keyids = None if selection.store_keyids is None else frozenset()
        if keyids is not None and scan.signer_keyid not in keyids:
            if config.implicit:
                why = f"{label} is signed by key {scan.signer_keyid[:12]}; {_NO_KEYS}"
            else:
                why = f"{label} is signed by key {scan.signer_keyid[:12]}, not a trusted scanner"
            return "untrusted", why
        return None

    def explain_selection(
        self, config: TrustedScanners, selection: ScanSelection, run: PolicyRun
    ) -> None:
        if config.implicit:
            if selection.store_keyids is not None:  # the pipeline: no key is trusted
                run.failed(
                    self.key,
                    _NO_KEYS,
                    remedy=(
                        "name the scanner keys this policy trusts: rules.trusted_scanners: "
                        "[<key id or PEM file>] (trustkit trust key list --role scanner)"
                    ),
                )
            return
        detail = f"{len(config.scanners)} trusted scanner key(s)"
        if selection.untrusted:
            detail += f"; not counted: {'; '.join(selection.untrusted)}"
        run.passed(self.key, detail)


PLUGINS: tuple[Rule, ...] = (TrustedScannersRule(),)
