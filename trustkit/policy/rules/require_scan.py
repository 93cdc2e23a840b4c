"""``require_scan``: what no usable verified scan attestation means (default: fail when the
policy BLOCKs). Without usable scans the findings rules are skipped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from trustkit.policy.rules.base import (
    Evidence,
    ParseContext,
    PolicyRun,
    Rule,
    ScanSelection,
    Stage,
)
from trustkit.verdict import Action


class RequireScan(Rule):
    key = "require_scan"
    order = 30
    stage = Stage.SCAN_PRESENCE
    schema: ClassVar[Mapping[str, Any]] = {
        "type": "boolean",
        "description": (
            "Fail when there is no usable verified scan attestation; default true when action is "
            "BLOCK."
        ),
    }

    def parse(self, value: Any, at: ParseContext) -> bool:
        return bool(value)

    def default(self, at: ParseContext) -> bool:
        return at.action is Action.BLOCK

    def needs(self, config: bool) -> frozenset[Evidence]:
        return frozenset({Evidence.SCANS}) if config else frozenset()

    def presence(self, config: bool, selection: ScanSelection, run: PolicyRun) -> bool:
        scans = selection.usable
        if scans:
            run.passed(self.key, f"{len(scans)} usable verified scan(s)")
            return True
        why = [*selection.set_aside, *(f"unverified: {u}" for u in selection.unverified)]
        detail = "no usable verified scan attestation" + (f" ({'; '.join(why)})" if why else "")
        if config:
            run.failed(
                self.key,
                f"{run.image} has {detail}",
                remedy=(
                    f"scan the image and attest the report with a trusted scanner key "
                    f"(trustkit push --scan {run.image}, or trustkit scan attest)"
                ),
            )
        else:
            run.passed(self.key, f"not required; {detail}; vulnerability rules skipped")
        return False


PLUGINS: tuple[Rule, ...] = (RequireScan(),)
