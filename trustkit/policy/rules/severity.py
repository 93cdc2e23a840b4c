"""``severity``: fail on any counting finding at or above this severity (VEX-suppressed,
allowlisted and, with ``ignore_unfixed``, unfixable findings do not count)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from trustkit.model.findings import Severity
from trustkit.policy.findings import FindingsView, id_list
from trustkit.policy.rules.base import Evidence, ParseContext, PolicyRun, Rule, Stage
from trustkit.policy.scope import ScopeSubject


class SeverityRule(Rule):
    key = "severity"
    order = 41
    stage = Stage.FINDINGS
    schema: ClassVar[Mapping[str, Any]] = {
        "$ref": "#/$defs/severity",
        "description": "Fail when any applicable finding is at or above this severity.",
    }
    defs: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "severity": {"enum": ["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"]}
    }

    def parse(self, value: Any, at: ParseContext) -> Severity:
        return Severity[value]

    def needs(self, config: Severity) -> frozenset[Evidence]:
        return frozenset({Evidence.SCANS})

    def prepare(self, config: Severity, view: FindingsView, subject: ScopeSubject) -> None:
        view.threshold = config

    def check(
        self, config: Severity, view: FindingsView, run: PolicyRun, subject: ScopeSubject
    ) -> None:
        index, waived, name = view.index, view.waived, run.policy.name
        counting = index.at_or_above(config, fixable_only=view.fixable_only)
        violating = [i for i in counting if i not in waived] if waived else counting
        notes = []
        if waived:
            notes.append(f"{len(waived)} allowlisted")
        if view.fixable_only and (unfixed := index.unfixed_at_or_above(config)):
            notes.append(f"{unfixed} without a fix ignored")
        if index.suppressed:
            notes.append(f"{index.suppressed} suppressed by VEX")
        note = f" ({', '.join(notes)})" if notes else ""
        if not violating:
            run.passed(self.key, f"no finding at or above {config.name}{note}")
            return
        affected = index.pick(violating)
        ids = index.ids_of(violating)
        waive = (
            f"add {ids[0] if len(ids) == 1 else 'the ids'} to the allowlist of policy "
            f"{name} with a reason, owner and expiry"
        )
        hint = index.upgrade_hint(violating)
        if hint != "upgrade ":
            remedy = f"{hint} (fixed versions) or {waive}"
        else:
            remedy = waive + ("" if view.fixable_only else ", or set ignore_unfixed (no fix yet)")
        run.failed(
            self.key,
            f"{len(ids)} vulnerabilit{'y' if len(ids) == 1 else 'ies'} at or above "
            f"{config.name}: {id_list(ids)}{note}",
            findings=ids,
            affected=affected,
            remedy=remedy,
        )


PLUGINS: tuple[Rule, ...] = (SeverityRule(),)
