"""The policy evaluator: facts about one image + policies → action, per-policy outcomes, reasons.

Pure: no I/O, the clock is an argument. The evaluator knows no rule: it walks each policy's
rules stage by stage (``trustkit.policy.rules``). Findings are indexed once per distinct set of
usable scans and shared by every policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from trustkit import refs
from trustkit.errors import BadInputError
from trustkit.model import TrustEvidence
from trustkit.model.findings import VerifiedScan
from trustkit.policy.findings import FindingsView, Indexed
from trustkit.policy.globs import DOCKER_RULE, ShortNames
from trustkit.policy.model import Policy
from trustkit.policy.rules import PolicyRun, ScanSelection, SignatureContext
from trustkit.policy.scope import ScopeSubject
from trustkit.sources.model import SignatureMaterial
from trustkit.verdict import Action, Context, PolicyOutcome, Reason, Verdict

#: a scan that claims to have finished further in the future than this is not believed
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ImageFacts:
    reference: str  # normalised reference text
    digest: str | None
    trust: TrustEvidence = field(default_factory=TrustEvidence.not_checked)
    scans: tuple[VerifiedScan, ...] = ()  # verified only, newest first
    unverified_scans: tuple[str, ...] = ()  # why other attestations did not verify
    #: tags known to name this content besides the trust evidence's (a push writes its tag)
    known_tags: tuple[str, ...] = ()
    #: where short-name globs resolve (the registries config); Docker's rule by default
    short_names: ShortNames = DOCKER_RULE
    #: None: every verified scan counts for a policy without trusted_scanners (library callers
    #: that verified against keys of their choosing); a set (what the pipeline passes): such a
    #: policy trusts no scanner key, the key store's included — a key counts only for a policy
    #: that names it (issue 14)
    store_scanner_keyids: frozenset[str] | None = None
    #: cosign signatures and Sigstore bundles attached to the digest (read when a rule needs
    #: them; the signature rules verify them against their own keys and identities)
    signatures: SignatureMaterial | None = None


class Evaluation(NamedTuple):
    action: Action
    outcomes: tuple[PolicyOutcome, ...]
    reasons: tuple[Reason, ...]

    def verdict(self, facts: ImageFacts, *, context: Context) -> Verdict:
        """The Verdict for ``facts`` (what the pipeline returns after evaluation)."""
        return Verdict(
            reference=facts.reference,
            context=context,
            allowed=self.action < Action.BLOCK,
            action=self.action,
            digest=facts.digest,
            reasons=self.reasons,
            policies=self.outcomes,
            signers=facts.trust.signer_names,
            evidence=facts.trust if facts.trust.checked else None,
        )


def _select_scans(policy: Policy, facts: ImageFacts, now: datetime) -> ScanSelection:
    """Scans this policy accepts, and why the others were set aside."""
    selection = ScanSelection(
        usable=(), unverified=facts.unverified_scans, store_keyids=facts.store_scanner_keyids
    )
    usable: list[VerifiedScan] = []
    filters = policy.plan.scan_filters
    for scan in facts.scans:
        # a scan's age is the scanner's (report time, DB build), never the attestation's
        finished = scan.scanned_at or scan.scan_finished_on
        label = f"{scan.report.scanner.name} scan of {finished:%Y-%m-%dT%H:%M:%SZ}"
        if facts.digest is not None and scan.image_digest != facts.digest:
            selection.other.append(f"{label} is for {scan.image_digest}, not this image")
            continue
        if finished.tzinfo is None:  # a report without a zone: read it as UTC, as scanners do
            finished = finished.replace(tzinfo=UTC)
        age = now - finished
        aside = None
        for rule, config in filters:
            aside = rule.set_aside(config, scan, age, label, selection)
            if aside is not None:
                break
        if aside is not None:
            selection.put_aside(*aside)
            continue
        if age < -CLOCK_SKEW:
            selection.other.append(f"{label} claims to have finished in the future")
            continue
        usable.append(scan)
    selection.usable = tuple(usable)
    return selection


def _evaluate_policy(
    policy: Policy,
    facts: ImageFacts,
    subject: ScopeSubject,
    image: str,
    now: datetime,
    indexes: dict[tuple[int, ...], Indexed],
) -> PolicyOutcome:
    plan = policy.plan
    run = PolicyRun(policy, image)
    run.passed("scope", f"{image} is in scope")
    if plan.signature:
        ctx = SignatureContext(
            trust=facts.trust, image=image, policy=policy.name, signatures=facts.signatures
        )
        for rule, config in plan.signature:
            run.record(rule.key, rule.verify(config, ctx))
    if not policy.needs_scans:
        return run.outcome()
    selection = _select_scans(policy, facts, now)
    for rule, config in plan.scan_filters:
        rule.explain_selection(config, selection, run)
    proceed = bool(selection.usable)
    for rule, config in plan.presence:
        proceed = rule.presence(config, selection, run) and proceed
    if not proceed:
        return run.outcome()
    key = tuple(id(s) for s in selection.usable)
    index = indexes.get(key)
    if index is None:
        index = indexes[key] = Indexed(selection.usable)
    view = FindingsView(index=index, now=now)
    for rule, config in plan.findings:
        rule.prepare(config, view, subject)
    for rule, config in plan.findings:
        rule.check(config, view, run, subject)
    return run.outcome()


def image_name(ref: refs.ImageRef) -> str:
    """How reasons name the image: by its tag when there is one (what gets signed, scanned
    and allowlisted), else by its digest."""
    return refs.ImageRef(ref.domain, ref.path, ref.tag).familiar if ref.tag else ref.familiar


def evaluate(
    policies: Sequence[Policy],
    facts: ImageFacts,
    *,
    context: Context,
    now: datetime,
) -> Evaluation:
    """Evaluate every policy that applies to the image in this context; the strictest wins.

    ``now`` must be timezone-aware. A policy applies when some name of the content (the tag
    fetched, every signed tag pointing at the digest; see ``trustkit.policy.scope``) is in its
    scope and not excluded; others are skipped (not reported). With none the action is ALLOW.
    """
    if now.tzinfo is None:
        raise BadInputError("evaluate() needs a timezone-aware 'now'")
    ref = refs.parse(facts.reference)
    subject = ScopeSubject.of(
        ref, facts.digest, facts.trust, known_tags=facts.known_tags, short_names=facts.short_names
    )
    image = image_name(ref)
    indexes: dict[tuple[int, ...], Indexed] = {}
    outcomes = tuple(
        _evaluate_policy(p, facts, subject, image, now, indexes)
        for p in policies
        if p.applies_to(subject, context=context)
    )
    action = max((o.action for o in outcomes), default=Action.ALLOW)
    reasons = tuple(sorted((r for o in outcomes for r in o.reasons), key=lambda r: -r.action))
    return Evaluation(action=action, outcomes=outcomes, reasons=reasons)
