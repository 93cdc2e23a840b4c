"""``denylist``: vulnerability ids that always fail, whatever VEX, the allowlist or
``ignore_unfixed`` say."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from trustkit.policy.findings import FindingsView, id_list
from trustkit.policy.rules.base import Evidence, ParseContext, PolicyRun, Rule, Stage
from trustkit.policy.scope import ScopeSubject

VULNERABILITY_ID = {
    "type": "string",
    "maxLength": 128,
    "pattern": "^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9._:]+)+$",
}


@dataclass(frozen=True)
class Denylist:
    ids: tuple[str, ...]  # upper-cased, in file order


class DenylistRule(Rule):
    key = "denylist"
    order = 40
    stage = Stage.FINDINGS
    schema: ClassVar[Mapping[str, Any]] = {
        "type": "array",
        "maxItems": 10000,
        "uniqueItems": True,
        "items": {"$ref": "#/$defs/vulnerabilityId"},
        "description": (
            "Vulnerability ids that always fail, whatever the allowlist, VEX or ignore_unfixed say."
        ),
    }
    defs: ClassVar[Mapping[str, Mapping[str, Any]]] = {"vulnerabilityId": VULNERABILITY_ID}

    def parse(self, value: Any, at: ParseContext) -> Denylist | None:
        ids: list[str] = []
        for i, vuln in enumerate(value):
            upper = str(vuln).upper()
            if upper in ids:
                at.problem((i,), f"denylist names {upper} twice")
            ids.append(upper)
        return Denylist(tuple(ids)) if ids else None

    def needs(self, config: Denylist) -> frozenset[Evidence]:
        return frozenset({Evidence.SCANS})

    def check(
        self, config: Denylist, view: FindingsView, run: PolicyRun, subject: ScopeSubject
    ) -> None:
        index = view.index
        denied = list(dict.fromkeys(i for vid in config.ids for i in index.by_id.get(vid, ())))
        if not denied:
            run.passed(self.key, f"none of {len(config.ids)} denylisted ids present")
            return
        affected = index.pick(denied)
        ids = index.ids_of(denied)
        if any(f.fixed_versions for f in affected):
            remedy = index.upgrade_hint(denied) + "; a denylisted id cannot be allowlisted"
        else:
            remedy = (
                f"remove the package, or take the id off the denylist of policy {run.policy.name}"
            )
        run.failed(
            self.key,
            f"denylisted vulnerabilit{'y' if len(ids) == 1 else 'ies'} present: {id_list(ids)}",
            findings=ids,
            affected=affected,
            remedy=remedy,
        )


PLUGINS: tuple[Rule, ...] = (DenylistRule(),)
