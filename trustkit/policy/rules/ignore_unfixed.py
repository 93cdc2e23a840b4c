"""``ignore_unfixed``: findings with no fixed version do not count for the severity rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from trustkit.policy.findings import FindingsView
from trustkit.policy.rules.base import ParseContext, PolicyRun, Rule, Stage
from trustkit.policy.scope import ScopeSubject


class IgnoreUnfixed(Rule):
    key = "ignore_unfixed"
    order = 42
    stage = Stage.FINDINGS
    schema: ClassVar[Mapping[str, Any]] = {
        "type": "boolean",
        "description": "Findings with no fixed version do not count for the severity rule.",
    }

    def parse(self, value: Any, at: ParseContext) -> bool | None:
        return True if value else None

    def prepare(self, config: bool, view: FindingsView, subject: ScopeSubject) -> None:
        view.fixable_only = True

    def check(
        self, config: bool, view: FindingsView, run: PolicyRun, subject: ScopeSubject
    ) -> None:
        run.passed(self.key, "findings without a fixed version do not count")


PLUGINS: tuple[Rule, ...] = (IgnoreUnfixed(),)
