"""The policy evaluator: facts about one image + policies → action, per-policy outcomes, reasons.

Pure: no I/O, the clock is an argument. Findings are indexed once per distinct set of usable
scans (by severity, fixability and id) so that twenty policies over ten thousand findings cost a
few set look-ups each rather than twenty passes over every finding.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeVar

from trustkit import refs
from trustkit.attest.model import Finding, FixState, Severity, VerifiedScan
from trustkit.policy.model import AllowlistEntry, Policy, format_duration, signer_name
from trustkit.verdict import Action, Context, PolicyOutcome, Reason, Verdict

_T = TypeVar("_T")

#: a scan that claims to have finished further in the future than this is not believed
CLOCK_SKEW = timedelta(minutes=5)
#: how many ids a message lists before "+N more" (the Reason carries them all)
MESSAGE_IDS = 5


@dataclass(frozen=True)
class TrustFact:
    """What content trust said about the tag."""

    checked: bool = False  # False: trust was not looked at (content trust off, no policy asked)
    signed: bool = False
    signers: tuple[str, ...] = ()  # signer / delegation role names that signed the target
    error: str | None = None  # why it is not trusted


@dataclass(frozen=True)
class ImageFacts:
    reference: str  # normalised reference text
    digest: str | None
    trust: TrustFact = field(default_factory=TrustFact)
    scans: tuple[VerifiedScan, ...] = ()  # verified only, newest first
    unverified_scans: tuple[str, ...] = ()  # why other attestations did not verify


class Evaluation(NamedTuple):
    action: Action
    outcomes: tuple[PolicyOutcome, ...]
    reasons: tuple[Reason, ...]

    def verdict(self, facts: ImageFacts, *, context: Context) -> Verdict:
        """The Verdict for ``facts`` (what ``trustkit.enforce`` returns after evaluation)."""
        return Verdict(
            reference=facts.reference,
            context=context,
            allowed=self.action < Action.BLOCK,
            action=self.action,
            digest=facts.digest,
            reasons=self.reasons,
            policies=self.outcomes,
            signers=facts.trust.signers,
        )


def _identity(finding: Finding) -> tuple[str, str, str]:
    return (finding.vulnerability_id, finding.package_name, finding.installed_version)


class _Indexed:
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


def _id_list(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:MESSAGE_IDS])
    return shown + (f" (+{len(ids) - MESSAGE_IDS} more)" if len(ids) > MESSAGE_IDS else "")


class _PolicyRun:
    """One policy against one image: collects rule results and reasons."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.rules: list[tuple[str, bool, str]] = []
        self.reasons: list[Reason] = []

    def passed(self, rule: str, detail: str) -> None:
        self.rules.append((rule, True, detail))

    def failed(
        self,
        rule: str,
        message: str,
        *,
        remedy: str | None = None,
        findings: tuple[str, ...] = (),
        affected: tuple[Finding, ...] = (),
        detail: str | None = None,
    ) -> None:
        self.rules.append((rule, False, detail or message))
        self.reasons.append(
            Reason(
                rule=rule,
                message=f"policy {self.policy.name}: {message}",
                action=self.policy.action,
                policy=self.policy.name,
                findings=findings,
                remedy=remedy,
                affected=affected,
            )
        )

    def outcome(self) -> PolicyOutcome:
        action = self.policy.action if self.reasons else Action.ALLOW
        return PolicyOutcome(
            policy=self.policy.name,
            action=action,
            reasons=tuple(self.reasons),
            rules=tuple(self.rules),
        )


def _check_signed(run: _PolicyRun, trust: TrustFact, image: str) -> None:
    requirement = run.policy.require_signed
    if requirement is None:
        return
    name = run.policy.name
    sign_remedy = f"sign the tag (trustkit trust sign {image}) or push it with content trust on"
    if not trust.checked:
        run.failed(
            "require_signed",
            f"{image}: content trust was not checked, so the tag's signature is unknown",
            remedy="enable content trust (SERVIN_CONTENT_TRUST=1) for this check",
        )
        return
    if not trust.signed:
        why = trust.error or "the tag is not signed in its trusted collection"
        # the trust error often says "... is not signed" itself: do not say it twice
        message = why if "not signed" in why else f"{image} is not signed: {why}"
        run.failed("require_signed", message, remedy=sign_remedy)
        return
    if requirement.signers:
        signed_by = {signer_name(s) for s in trust.signers}
        present = [s for s in requirement.signers if s in signed_by]
        if len(present) < requirement.threshold:
            wanted = ", ".join(requirement.signers)
            run.failed(
                "require_signed",
                f"{image} is signed by {len(present)} of the required signers "
                f"({', '.join(present) or 'none'}); {requirement.threshold} of [{wanted}] needed",
                remedy=(
                    f"have {requirement.threshold - len(present)} more of [{wanted}] sign the "
                    f"tag, or change require_signed.signers of policy {name}"
                ),
            )
            return
        run.passed(
            "require_signed",
            f"signed by {', '.join(present)} ({len(present)} of {requirement.threshold} needed)",
        )
        return
    run.passed("require_signed", f"signed ({', '.join(trust.signers) or 'trusted collection'})")


@dataclass
class _ScanSelection:
    usable: tuple[VerifiedScan, ...]
    untrusted: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    @property
    def set_aside(self) -> list[str]:
        return [*self.untrusted, *self.stale, *self.other]


def _usable_scans(policy: Policy, facts: ImageFacts, now: datetime) -> _ScanSelection:
    """Scans this policy accepts, and why the others were set aside."""
    selection = _ScanSelection(usable=())
    usable: list[VerifiedScan] = []
    for scan in facts.scans:
        label = f"{scan.report.scanner.name} scan of {scan.scan_finished_on:%Y-%m-%dT%H:%M:%SZ}"
        if facts.digest is not None and scan.image_digest != facts.digest:
            selection.other.append(f"{label} is for {scan.image_digest}, not this image")
            continue
        if policy.trusted_keyids and scan.signer_keyid not in policy.trusted_keyids:
            selection.untrusted.append(
                f"{label} is signed by key {scan.signer_keyid[:12]}, not a trusted scanner"
            )
            continue
        finished = scan.scan_finished_on
        if finished.tzinfo is None:  # a report without a zone: read it as UTC, as scanners do
            finished = finished.replace(tzinfo=UTC)
        age = now - finished
        if age < -CLOCK_SKEW:
            selection.other.append(f"{label} claims to have finished in the future")
            continue
        if policy.max_scan_age is not None and age > policy.max_scan_age:
            selection.stale.append(
                f"{label} is {_age_text(age)} old, older than max_scan_age "
                f"{format_duration(policy.max_scan_age)}"
            )
            continue
        usable.append(scan)
    selection.usable = tuple(usable)
    return selection


def _age_text(age: timedelta) -> str:
    if age >= timedelta(days=2):
        return f"{age.days} days"
    hours = int(age.total_seconds() // 3600)
    return f"{hours} hours" if hours >= 1 else f"{int(age.total_seconds() // 60)} minutes"


def _allowlist_state(
    policy: Policy, index: _Indexed, ref: refs.ImageRef, digest: str | None, now: datetime
) -> tuple[set[int], dict[int, AllowlistEntry], list[AllowlistEntry]]:
    """(waived finding indices, finding index → its expired entry, every expired entry)."""
    waived: set[int] = set()
    expired_for: dict[int, AllowlistEntry] = {}
    expired_entries: list[AllowlistEntry] = []
    for vid, entries in policy.allowlist_by_id.items():
        applicable = [e for e in entries if e.applies_to(ref, digest)]
        active = [e for e in applicable if not e.expired(now)]
        if applicable and not active:
            expired_entries.append(applicable[0])
        hits = index.by_id.get(vid)
        if not hits or not applicable:
            continue
        if active:
            waived.update(hits)
        else:
            for i in hits:
                expired_for.setdefault(i, applicable[0])
    return waived, expired_for, expired_entries


def _check_denylist(run: _PolicyRun, index: _Indexed) -> None:
    """Absolute: whatever VEX, the allowlist or ignore_unfixed say."""
    policy = run.policy
    denied = list(dict.fromkeys(i for vid in policy.denylist for i in index.by_id.get(vid, ())))
    if not denied:
        run.passed("denylist", f"none of {len(policy.denylist)} denylisted ids present")
        return
    affected = index.pick(denied)
    ids = index.ids_of(denied)
    if any(f.fixed_versions for f in affected):
        remedy = index.upgrade_hint(denied) + "; a denylisted id cannot be allowlisted"
    else:
        remedy = f"remove the package, or take the id off the denylist of policy {policy.name}"
    run.failed(
        "denylist",
        f"denylisted vulnerabilit{'y' if len(ids) == 1 else 'ies'} present: {_id_list(ids)}",
        findings=ids,
        affected=affected,
        remedy=remedy,
    )


def _check_severity(
    run: _PolicyRun, index: _Indexed, threshold: Severity, waived: set[int]
) -> list[int]:
    """Fail on counting findings at or above ``threshold``; return the violating indices."""
    policy = run.policy
    counting = index.at_or_above(threshold, fixable_only=policy.ignore_unfixed)
    violating = [i for i in counting if i not in waived] if waived else counting
    notes = []
    if waived:
        notes.append(f"{len(waived)} allowlisted")
    if policy.ignore_unfixed and (unfixed := index.unfixed_at_or_above(threshold)):
        notes.append(f"{unfixed} without a fix ignored")
    if index.suppressed:
        notes.append(f"{index.suppressed} suppressed by VEX")
    note = f" ({', '.join(notes)})" if notes else ""
    if not violating:
        run.passed("severity", f"no finding at or above {threshold.name}{note}")
        return violating
    affected = index.pick(violating)
    ids = index.ids_of(violating)
    waive = (
        f"add {ids[0] if len(ids) == 1 else 'the ids'} to the allowlist of policy "
        f"{policy.name} with a reason, owner and expiry"
    )
    hint = index.upgrade_hint(violating)
    if hint != "upgrade ":
        remedy = f"{hint} (fixed versions) or {waive}"
    else:
        remedy = waive + ("" if policy.ignore_unfixed else ", or set ignore_unfixed (no fix yet)")
    run.failed(
        "severity",
        f"{len(ids)} vulnerabilit{'y' if len(ids) == 1 else 'ies'} at or above "
        f"{threshold.name}: {_id_list(ids)}{note}",
        findings=ids,
        affected=affected,
        remedy=remedy,
    )
    return violating


def _check_findings(
    run: _PolicyRun, index: _Indexed, ref: refs.ImageRef, digest: str | None, now: datetime
) -> None:
    policy = run.policy
    waived, expired_for, expired_entries = _allowlist_state(policy, index, ref, digest, now)
    if policy.denylist:
        _check_denylist(run, index)
    if policy.severity is not None:
        _check_severity(run, index, policy.severity, waived)
    if policy.ignore_unfixed:
        run.passed("ignore_unfixed", "findings without a fixed version do not count")
    # An expired entry is a reason of its own wherever it no longer waives a violating finding.
    lapsed: dict[str, AllowlistEntry] = {}
    if policy.severity is not None:
        for i, entry in expired_for.items():
            if i not in waived and index.violates(
                i, policy.severity, fixable_only=policy.ignore_unfixed
            ):
                lapsed[entry.vulnerability_id] = entry
    for vid in sorted(lapsed):
        entry = lapsed[vid]
        run.failed(
            "allowlist",
            f"allowlist entry for {vid} expired on {entry.expires_text} "
            f"(owner {entry.owner}: {entry.reason})",
            findings=(vid,),
            remedy=f"fix {vid}, or renew its allowlist entry in policy {policy.name}",
        )
    if policy.allowlist and not lapsed:
        detail = f"{len(waived)} finding(s) waived by {len(policy.allowlist)} entries"
        if expired_entries:
            detail += "; expired: " + ", ".join(
                f"{e.vulnerability_id} on {e.expires_text}" for e in expired_entries[:MESSAGE_IDS]
            )
        run.passed("allowlist", detail)


def _evaluate_policy(
    policy: Policy,
    facts: ImageFacts,
    ref: refs.ImageRef,
    now: datetime,
    indexes: dict[tuple[int, ...], _Indexed],
) -> PolicyOutcome:
    run = _PolicyRun(policy)
    # name the tag when there is one: it is what gets signed, scanned and allowlisted
    image = refs.ImageRef(ref.domain, ref.path, ref.tag).familiar if ref.tag else ref.familiar
    run.passed("scope", f"{image} is in scope")
    _check_signed(run, facts.trust, image)

    if not policy.needs_scans:
        return run.outcome()
    selection = _usable_scans(policy, facts, now)
    scans = selection.usable
    if policy.trusted_scanners:
        detail = f"{len(policy.trusted_scanners)} trusted scanner key(s)"
        if selection.untrusted:
            detail += f"; not counted: {'; '.join(selection.untrusted)}"
        run.passed("trusted_scanners", detail)
    if policy.max_scan_age is not None:
        limit = format_duration(policy.max_scan_age)
        if selection.stale and not scans:
            run.rules.append(("max_scan_age", False, "; ".join(selection.stale)))
        else:
            run.passed("max_scan_age", f"usable scans are at most {limit} old")
    if not scans:
        why = [*selection.set_aside, *(f"unverified: {u}" for u in facts.unverified_scans)]
        detail = "no usable verified scan attestation" + (f" ({'; '.join(why)})" if why else "")
        if policy.require_scan:
            run.failed(
                "require_scan",
                f"{image} has {detail}",
                remedy=(
                    f"scan the image and attest the report with a trusted scanner key "
                    f"(trustkit push --scan {image}, or trustkit scan attest)"
                ),
            )
        else:
            run.passed("require_scan", f"not required; {detail}; vulnerability rules skipped")
        return run.outcome()
    run.passed("require_scan", f"{len(scans)} usable verified scan(s)")
    key = tuple(id(s) for s in scans)
    index = indexes.get(key)
    if index is None:
        index = indexes[key] = _Indexed(scans)
    _check_findings(run, index, ref, facts.digest, now)
    return run.outcome()


def evaluate(
    policies: Sequence[Policy],
    facts: ImageFacts,
    *,
    context: Context,
    now: datetime,
) -> Evaluation:
    """Evaluate every policy that applies to the image in this context; the strictest wins.

    ``now`` must be timezone-aware. Policies whose scope or contexts do not match are skipped
    (not reported). With no applicable policy the action is ALLOW.
    """
    if now.tzinfo is None:
        raise ValueError("evaluate() needs a timezone-aware 'now'")
    ref = refs.parse(facts.reference)
    indexes: dict[tuple[int, ...], _Indexed] = {}
    outcomes = tuple(
        _evaluate_policy(p, facts, ref, now, indexes)
        for p in policies
        if p.matches(ref, facts.digest, context=context)
    )
    action = max((o.action for o in outcomes), default=Action.ALLOW)
    reasons = tuple(sorted((r for o in outcomes for r in o.reasons), key=lambda r: -r.action))
    return Evaluation(action=action, outcomes=outcomes, reasons=reasons)
