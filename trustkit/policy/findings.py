"""The findings of a set of scans, indexed once for every findings rule of every policy.

Findings are bucketed by severity and fixability and indexed by id (and alias) so that twenty
policies over ten thousand findings cost a few set look-ups each rather than twenty passes.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from trustkit.model.findings import Finding, FixState, Severity, VerifiedScan

if TYPE_CHECKING:
    from trustkit.policy.rules.allowlist import AllowlistEntry

_T = TypeVar("_T")

#: how many ids a message lists before "+N more" (the Reason carries them all)
MESSAGE_IDS = 5


def _identity(finding: Finding) -> tuple[str, str, str]:
    return (finding.vulnerability_id, finding.package_name, finding.installed_version)


class Indexed:
    """The findings of a set of scans, deduplicated and bucketed for fast rule checks."""

    def __init__(self, scans: Sequence[VerifiedScan]) -> None:
        # A finding another (newer) scan already reported is not counted twice; findings within
        # one report are kept as they are (the same package may sit at several paths).
        findings: list[Finding] = list(scans[0].report.findings) if scans else []
        if len(scans) > 1:
            seen = {_identity(f) for f in findings}
            for scan in scans[1:]:
                fresh = [f for f in scan.report.findings if _identity(f) not in seen]
                seen.update(_identity(f) for f in fresh)
                findings.extend(fresh)
        self.findings = findings
        self.ids: list[str] = []
        # the package to upgrade, for findings that have a fixed version
        self.upgrades: list[str | None] = []
        # does finding i count for a severity rule at this threshold (None: VEX-suppressed)?
        self.counting_severity: list[int | None] = []
        self.fixable: list[bool] = []
        self.suppressed = 0
        # buckets[severity][fixable] -> indices of counting (not VEX-suppressed) findings
        self.buckets: list[tuple[list[int], list[int]]] = [([], []) for _ in Severity]
        self.by_id: dict[str, list[int]] = {}
        by_id = self.by_id
        buckets = self.buckets
        fixed_state = FixState.FIXED
        for i, f in enumerate(findings):
            vid = f.vulnerability_id
            self.ids.append(vid)
            fixable = f.fix_state is fixed_state or bool(f.fixed_versions)
            self.fixable.append(fixable)
            self.upgrades.append(f.package_name if f.fixed_versions else None)
            key = vid.upper()
            hits = by_id.get(key)
            if hits is None:
                by_id[key] = [i]
            else:
                hits.append(i)
            for alias in f.aliases:
                by_id.setdefault(alias.upper(), []).append(i)
            if f.suppression is not None and f.suppressed:
                self.suppressed += 1
                self.counting_severity.append(None)
                continue
            self.counting_severity.append(f.severity)
            buckets[f.severity][1 if fixable else 0].append(i)

    def violates(self, i: int, threshold: Severity, *, fixable_only: bool) -> bool:
        severity = self.counting_severity[i]
        return (
            severity is not None and severity >= threshold and (self.fixable[i] or not fixable_only)
        )

    def at_or_above(self, threshold: Severity, *, fixable_only: bool) -> list[int]:
        """Counting findings, most severe first (messages show the first few)."""
        out: list[int] = []
        for sev in range(len(self.buckets) - 1, threshold - 1, -1):
            unfixed, fixed = self.buckets[sev]
            out.extend(fixed)
            if not fixable_only:
                out.extend(unfixed)
        return out

    def unfixed_at_or_above(self, threshold: Severity) -> int:
        return sum(len(self.buckets[s][0]) for s in range(threshold, len(self.buckets)))

    def pick(self, indices: Sequence[int]) -> tuple[Finding, ...]:
        return _pick(self.findings, indices)

    def ids_of(self, indices: Sequence[int]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_pick(self.ids, indices)))

    def upgrade_hint(self, indices: Sequence[int]) -> str:
        """'upgrade pkg to version, ...' for the fixable findings among ``indices``."""
        packages = dict.fromkeys(_pick(self.upgrades, indices))
        packages.pop(None, None)
        first: dict[str, str] = {}
        for i in indices:
            f = self.findings[i]
            if f.fixed_versions and f.package_name not in first:
                first[f.package_name] = f.fixed_versions[0]
                if len(first) == MESSAGE_IDS:
                    break
        parts = [f"{pkg} to {version}" for pkg, version in first.items()]
        more = len(packages) - len(parts)
        return "upgrade " + ", ".join(parts) + (f" (+{more} more packages)" if more > 0 else "")


def _pick(items: Sequence[_T], indices: Sequence[int]) -> tuple[_T, ...]:
    if not indices:
        return ()
    if len(indices) == 1:
        return (items[indices[0]],)
    picked: tuple[_T, ...] = operator.itemgetter(*indices)(items)
    return picked


def id_list(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:MESSAGE_IDS])
    return shown + (f" (+{len(ids) - MESSAGE_IDS} more)" if len(ids) > MESSAGE_IDS else "")


@dataclass
class FindingsView:
    """One policy's view of the indexed findings: what its modifier rules made of them."""

    index: Indexed
    now: datetime
    #: the severity threshold in force (set by the severity rule), for lapsed waivers
    threshold: Severity | None = None
    #: findings without a fixed version do not count (set by ignore_unfixed)
    fixable_only: bool = False
    #: finding indices waived by an active allowlist entry
    waived: set[int] = field(default_factory=set)
    #: finding index -> the expired entry that no longer waives it
    expired_for: dict[int, AllowlistEntry] = field(default_factory=dict)
    #: every applicable entry that has expired
    expired_entries: list[AllowlistEntry] = field(default_factory=list)
