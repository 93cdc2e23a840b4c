"""``max_scan_age``: a scan older than this counts as no scan.

The age is the scanner's: from the report's creation time, or its vulnerability database's build
when that is older (``VerifiedScan.scanned_at``), never from when it was attested. A report that
carries neither time cannot satisfy the rule."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from trustkit.errors import BadInputError
from trustkit.model.findings import VerifiedScan
from trustkit.policy.rules.base import ParseContext, PolicyRun, Rule, ScanSelection, SetAside, Stage

_DURATION_RE = re.compile(r"\A([1-9][0-9]{0,5})([smhdw])\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"7d"`` → 7 days. Units s, m, h, d, w; BadInputError otherwise."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise BadInputError(
            f"invalid duration {text!r}: use a number and one of s, m, h, d, w (7d)"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def age_text(age: timedelta) -> str:
    if age >= timedelta(days=2):
        return f"{age.days} days"
    hours = int(age.total_seconds() // 3600)
    return f"{hours} hours" if hours >= 1 else f"{int(age.total_seconds() // 60)} minutes"


class MaxScanAge(Rule):
    key = "max_scan_age"
    order = 21
    stage = Stage.SCAN_FILTER
    schema: ClassVar[Mapping[str, Any]] = {
        "$ref": "#/$defs/duration",
        "description": "A scan that finished longer ago than this counts as no scan.",
    }
    defs: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "duration": {"type": "string", "pattern": "^[1-9][0-9]{0,5}[smhdw]$"}
    }

    def parse(self, value: Any, at: ParseContext) -> timedelta | None:
        try:
            return parse_duration(value)
        except BadInputError as exc:
            at.problem((), str(exc))
            return None

    def set_aside(
        self,
        config: timedelta,
        scan: VerifiedScan,
        age: timedelta,
        label: str,
        selection: ScanSelection,
    ) -> tuple[SetAside, str] | None:
        if scan.scanned_at is None:
            why = (
                f"{label} carries no scanner time (no report creation time, no database build "
                "time), so it cannot satisfy max_scan_age"
            )
            return "stale", why
        if age > config:
            why = (
                f"{label} is {age_text(age)} old, older than max_scan_age {format_duration(config)}"
            )
            return "stale", why
        return None

    def explain_selection(
        self, config: timedelta, selection: ScanSelection, run: PolicyRun
    ) -> None:
        if selection.stale and not selection.usable:
            run.noted_failure(self.key, "; ".join(selection.stale))
        else:
            run.passed(self.key, f"usable scans are at most {format_duration(config)} old")


PLUGINS: tuple[Rule, ...] = (MaxScanAge(),)
