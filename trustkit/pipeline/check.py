"""The one pipeline that decides whether an image is trusted.

resolve → verify trust → fetch attestations → evaluate policy → ``Verdict``.

Every entry point (CLI push/pull, servin hooks, the CI gate, the admission webhook) calls
``check_image`` so that a decision and its explanation are the same everywhere. This module never
prints; it raises ``TrustkitError`` only for bad input and environment failures, and returns a
``Verdict`` for every trust or policy refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import FailureKind, PolicyRefusal
from trustkit.model import EvidenceSource, TrustEvidence
from trustkit.services import Services, as_services
from trustkit.verdict import Action, Context, Reason, Verdict

if TYPE_CHECKING:
    from trustkit.keys import Key
    from trustkit.model.findings import VerifiedScan
    from trustkit.policy import Evaluation, Policy
    from trustkit.sources.model import SignatureMaterial, SimpleSigningLayer

#: the cosign signatures a push will write for a digest (judged at push as at pull)
PlannedSignatures = Callable[[str], Sequence["SimpleSigningLayer"]]
#: the scan attestations a push will attach to a digest, verified against the keys the policies
#: trust: (verified scans, one line per attestation that does not verify)
PlannedScans = Callable[[str, Sequence["Key"]], tuple[Sequence["VerifiedScan"], Sequence[str]]]


def check_trust(
    settings: Settings | Services, ref: refs.ImageRef, *, every_tag: bool = True
) -> TrustEvidence:
    """What the trusted collection says about ``ref`` (a tag, a digest or both), as evidence.

    Refusals are evidence, not exceptions: the failure kind comes from the error's type, never
    from its message. A digest is trusted when a signed tag points at it (a digest names
    content, not who vouched for it, so ``name@sha256:...`` cannot route around content trust);
    ``tags`` lists every signed tag pointing at the digest, so tag-scoped policies scope it by
    all of them. ``every_tag=False``: a tag reference's own evidence only (ADR 0016).
    """
    from trustkit.collections.warm import trust_evidence

    return trust_evidence(as_services(settings), ref, every_tag=every_tag)


def trust_once_signed(
    settings: Settings | Services, ref: refs.ImageRef, digest: str, size: int | None
) -> TrustEvidence:
    """What content trust will say about ``ref`` once the push path signs it with our keys.

    Policy runs before the tag is signed (a BLOCKed image is never signed), so a
    ``require_signed`` policy is judged against the signature this push is about to make: the
    roles our keys sign the tag into, as ``sign_tag`` chooses them. Without a usable key the
    signing step would fail anyway; that error surfaces here, before anything is signed.
    """
    from trustkit.collections import planned_signer_identities

    # the key ids our keys will sign with: a policy counting or pinning keys judges the push
    # the way it will judge the pull
    signers = planned_signer_identities(settings, ref.gun, tag=ref.tag)
    return TrustEvidence(
        source=EvidenceSource.TUF_COLLECTION,
        checked=True,
        verified=True,
        digest=digest,
        size=size,
        signers=signers,
        tags=(ref.tag,) if ref.tag is not None else (),
    )


def _resolve_untrusted_digest(services: Services, ref: refs.ImageRef) -> str:
    if ref.digest is not None:
        return ref.digest
    from trustkit.registry import resolve_digest

    return resolve_digest(services.registries, ref).digest


def _policy_scanner_keys(services: Services, policies: Sequence[Policy]) -> list[Key]:
    """The keys some policy trusts for scans: its PEM keys, and for the key ids it names the
    key store's scanner key of that id (key material only: the store trusts nothing itself)."""
    from trustkit.attest.service import SCANNER_ROLE

    keys: dict[str, Key] = {}
    named: set[str] = set()
    for policy in policies:
        for key in policy.scanner_keys():
            keys[key.keyid] = key
        named.update(s.keyid for s in policy.trusted_scanners if s.key is None)
    if named - keys.keys():
        for record in services.keys.records(role=SCANNER_ROLE):
            if record.keyid in named and record.keyid not in keys:
                keys[record.keyid] = record.public_key
    return list(keys.values())


def _fetch_scans(
    services: Services,
    ref: refs.ImageRef,
    digest: str,
    policies: Sequence[Policy],
    planned: PlannedScans | None = None,
) -> tuple[tuple[VerifiedScan, ...], tuple[str, ...]]:
    """Scans verified against the keys the policies trust; which of them count for which
    policy is the policy's business (``trusted_scanners``). No policy trusting a key: no scan
    is fetched, the policies' scan rules fail closed.

    ``planned`` (a push, judged before its upload): the scans the push will attach count too,
    and content the registry does not hold yet simply has no scans there."""
    from trustkit.attest.service import verified_scans

    keys = _policy_scanner_keys(services, policies)
    if not keys:
        return (), ()
    reference = str(ref.with_digest(digest))
    if planned is None:
        scans, unverified = verified_scans(services, reference, trusted_keys=keys)
        return tuple(scans), tuple(unverified)
    from trustkit.attest.highwater import scan_order_time
    from trustkit.errors import NotFoundError

    try:
        held, held_problems = verified_scans(services, reference, trusted_keys=keys)
    except NotFoundError:
        held, held_problems = [], []
        absent = f"the content has no scan yet: the registry does not hold {digest}"
    else:
        absent = ""
    made, made_problems = planned(digest, keys)
    if absent and not made:
        held_problems = [absent]
    scans = sorted([*held, *made], key=lambda scan: -scan_order_time(scan).timestamp())
    return tuple(scans), (*made_problems, *held_problems)


def fetch_scans(
    settings: Settings | Services, ref: refs.ImageRef, digest: str, policies: Sequence[Policy]
) -> tuple[tuple[VerifiedScan, ...], tuple[str, ...]]:
    return _fetch_scans(as_services(settings), ref, digest, policies)


def check_image(
    settings: Settings | Services,
    reference: str,
    *,
    context: Context,
    policy_files: Sequence[Path] = (),
    policies: Sequence[Policy] | None = None,
    now: datetime | None = None,
    require_trust: bool | None = None,
    trust: TrustEvidence | None = None,
    planned_signatures: PlannedSignatures | None = None,
    planned_scans: PlannedScans | None = None,
) -> Verdict:
    """Decide about one image. ``require_trust`` defaults to ``settings.content_trust``.

    With content trust on, an unsigned, stale, rolled-back or tampered tag is a BLOCK before any
    policy runs. Policies (from the policy directory and ``policy_files``) are then evaluated
    over the trust evidence and the verified scan attestations of the resolved digest; a policy
    applies by every name of the content (``trustkit.policy.scope``), so a digest reference is
    scoped by every signed tag pointing at it, and tag-scoped policies apply when no tag is known.
    ``trust`` replaces the trust lookup (the push path: the signature about to be made);
    ``planned_signatures`` adds the cosign signatures the push is about to write, made only when
    a policy reads signatures. ``planned_scans`` adds the scan attestations the push is about
    to attach (``_fetch_scans``), made before the content is uploaded.
    """
    services = as_services(settings)
    try:
        return _check_image(
            services,
            reference,
            context=context,
            policy_files=policy_files,
            policies=policies,
            now=now,
            require_trust=require_trust,
            trust=trust,
            planned_signatures=planned_signatures,
            planned_scans=planned_scans,
        )
    finally:
        if services is not settings:  # collaborators made for this call only
            services.close()


def _check_image(
    services: Services,
    reference: str,
    *,
    context: Context,
    policy_files: Sequence[Path],
    policies: Sequence[Policy] | None,
    now: datetime | None,
    require_trust: bool | None,
    trust: TrustEvidence | None,
    planned_signatures: PlannedSignatures | None = None,
    planned_scans: PlannedScans | None = None,
    gathered: _Gathered | None = None,
) -> Verdict:
    ref = refs.parse(reference)
    clock = now or services.clock()
    if policies is None:
        policies = _policies(services, policy_files)
    in_context = [p for p in policies if p.applies_in(context)]
    enforce_trust = services.settings.content_trust if require_trust is None else require_trust
    if not in_context:
        # no policy applies here: the verdict is the trust check's alone (and the policy
        # rules, scope and yaml are never imported)
        return _trust_verdict(services, ref, context, enforce_trust, trust)

    from trustkit.policy import ImageFacts, ScopeSubject, evaluate
    from trustkit.policy.globs import DOCKER_RULE, ShortNames
    from trustkit.policy.rules import Evidence

    # a push writes its tag: the tag names the pushed digest whatever the trust data says yet
    known_tags = (ref.tag,) if context is Context.PUSH and ref.tag is not None else ()
    short_names = DOCKER_RULE
    if any(p.short_named for p in in_context):  # short-name globs follow the registries config
        config = services.registries.config
        short_names = ShortNames.resolving(
            config.unqualified_search_registries, config.short_name_mode
        )
    asked = ScopeSubject.of(ref, ref.digest, known_tags=known_tags, short_names=short_names)
    candidates = [p for p in in_context if asked.may_be_in_scope(p.scope, p.exclude)]
    needs_trust = (
        enforce_trust
        or any(p.requires_signed for p in candidates)
        # a digest's tags come from the trust data; tag-scoped policies need them
        or (not asked.tag_known and any(p.tag_scoped for p in candidates))
    )

    if trust is None and not needs_trust:
        trust = TrustEvidence.not_checked()
    elif trust is None:
        # the tag's own evidence first when the other tags of its digest cannot change the
        # verdict unless a signer rule fails (then judged again on every tag, below)
        every_tag = ref.tag is None or any(p.tag_scoped for p in in_context)
        trust = check_trust(services, ref, every_tag=every_tag)
    refusal = _untrusted_refusal(ref, context, enforce_trust, trust)
    if refusal is not None:
        return refusal

    digest = (trust.digest if trust.verified else None) or ref.digest
    subject = ScopeSubject.of(ref, digest, trust, known_tags=known_tags, short_names=short_names)
    matching = [p for p in in_context if subject.in_scope(p.scope, p.exclude)]
    if digest is None and matching:
        digest = _resolve_untrusted_digest(services, ref)
        subject = ScopeSubject.of(
            ref, digest, trust, known_tags=known_tags, short_names=short_names
        )
        matching = [p for p in in_context if subject.in_scope(p.scope, p.exclude)]

    scans: tuple[VerifiedScan, ...] = ()
    unverified: tuple[str, ...] = ()
    signatures: SignatureMaterial | None = None
    policy_ids = tuple(id(p) for p in matching)
    read = gathered is None or (gathered.digest, gathered.policy_ids) != (digest, policy_ids)
    if not read and gathered is not None:  # the first judgement of this check read them
        scans, unverified, signatures = gathered.scans, gathered.unverified, gathered.signatures
    if read and digest is not None and any(p.needs_scans for p in matching):
        scans, unverified = _fetch_scans(services, ref, digest, matching, planned_scans)

    if read and digest is not None and any(Evidence.SIGNATURES in p.needs for p in matching):
        # cosign signatures and Sigstore bundles, read once; each rule verifies them itself
        from trustkit.sources.cosign import fetch_material

        signatures = fetch_material(services, ref, digest)
        if planned_signatures is not None:
            signatures = signatures.with_layers(tuple(planned_signatures(digest)))

    facts = ImageFacts(
        reference=str(ref),
        digest=digest,
        trust=trust,
        signatures=signatures,
        scans=scans,
        unverified_scans=unverified,
        known_tags=known_tags,
        short_names=short_names,
        # store keys are trusted by no policy implicitly: a key counts only for a policy
        # naming it in trusted_scanners (issue 14)
        store_scanner_keyids=frozenset(),
    )
    evaluation = evaluate(matching, facts, context=context, now=clock)
    if not trust.complete and _signer_rule_failed(matching, evaluation):
        # more signers can only help (every signer rule is monotone in the evidence): judge
        # again on every signed tag of the digest, exactly as without the shortcut
        return _check_image(
            services,
            reference,
            context=context,
            policy_files=policy_files,
            policies=policies,
            now=clock,
            require_trust=require_trust,
            trust=check_trust(services, ref, every_tag=True),
            planned_signatures=planned_signatures,
            planned_scans=planned_scans,
            gathered=_Gathered(digest, policy_ids, scans, unverified, signatures),
        )
    return evaluation.verdict(facts, context=context)


def _untrusted_refusal(
    ref: refs.ImageRef, context: Context, enforce_trust: bool, trust: TrustEvidence
) -> Verdict | None:
    """The BLOCK verdict of an image content trust requires and the trust check refused."""
    if not enforce_trust or trust.verified:
        return None
    if trust.unsigned and trust.message:
        message = trust.message  # names the image and says it is not signed
    else:
        message = f"{ref.familiar} is not trusted: {trust.message or 'no valid signature'}"
    remedy = (
        f"sign it (SERVIN_CONTENT_TRUST=1 trustkit push ... or trustkit trust sign "
        f"{ref.familiar}), or pull by a trusted digest"
    )
    if trust.failure is FailureKind.EXPIRED:  # signed, but nobody renewed its trust data
        remedy = f"whoever holds its timestamp key renews it: trustkit trust renew {ref.gun}"
    reason = Reason(rule="trust", message=message, remedy=remedy)
    return Verdict(
        reference=str(ref),
        context=context,
        allowed=False,
        action=Action.BLOCK,
        digest=None,
        reasons=(reason,),
        evidence=trust,
    )


def _policies(services: Services, policy_files: Sequence[Path]) -> Sequence[Policy]:
    """The policies of the settings' directory and ``policy_files``; the loader (rules,
    yaml, schemas) is imported only when there is a file to load."""
    from trustkit.policy.files import configured_policy_files

    if not policy_files and not configured_policy_files(services.settings):
        return ()
    from trustkit.policy import load_policies

    return load_policies(services.settings, extra_files=list(policy_files))


def _trust_verdict(
    services: Services,
    ref: refs.ImageRef,
    context: Context,
    enforce_trust: bool,
    trust: TrustEvidence | None,
) -> Verdict:
    """The verdict when no policy applies: content trust's alone, as evaluating no policies
    gives it (ALLOW, unless content trust is required and refused)."""
    if trust is None:
        trust = (
            check_trust(services, ref, every_tag=ref.tag is None)
            if enforce_trust
            else TrustEvidence.not_checked()
        )
    refusal = _untrusted_refusal(ref, context, enforce_trust, trust)
    if refusal is not None:
        return refusal
    return Verdict(
        reference=str(ref),
        context=context,
        allowed=True,
        action=Action.ALLOW,
        digest=(trust.digest if trust.verified else None) or ref.digest,
        reasons=(),
        policies=(),
        signers=trust.signer_names,
        evidence=trust if trust.checked else None,
    )


class _Gathered(NamedTuple):
    """What a first judgement on a tag's own evidence already read (the same digest and
    policies need the same scans and signatures)."""

    digest: str | None
    policy_ids: tuple[int, ...]  # the policies that applied, by identity
    scans: tuple[VerifiedScan, ...]
    unverified: tuple[str, ...]
    signatures: SignatureMaterial | None


def _signer_rule_failed(policies: Sequence[Policy], evaluation: Evaluation) -> bool:
    """Whether some policy's rule that reads the trust evidence (signers, key ids) failed.

    Only such a rule can judge differently with the signers of the digest's other tags: the
    scope reads tags only through tag-scoped globs (then every tag was read to begin with), and
    no other rule reads the trust evidence."""
    from trustkit.policy.rules import Evidence

    reading: dict[str, set[str]] = {}
    for policy in policies:
        keys = reading.setdefault(policy.name, set())
        keys.update(
            r.key for r, config in policy.plan.signature if Evidence.TRUST in r.needs(config)
        )
    return any(
        not passed and rule in reading.get(outcome.policy, ())
        for outcome in evaluation.outcomes
        for rule, passed, _ in outcome.rules
    )


def require_allowed(verdict: Verdict) -> Verdict:
    """Raise ``PolicyRefusal`` for a BLOCK verdict (exit 1, one line naming every reason)."""
    if verdict.allowed:
        return verdict
    remedies = [r.remedy for r in verdict.reasons if r.remedy]
    raise PolicyRefusal(
        f"refused {verdict.summary()}",
        hint=remedies[0] if remedies else "run trustkit policy eval --explain for details",
    )
