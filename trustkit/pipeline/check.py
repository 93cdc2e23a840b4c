"""The one pipeline that decides whether an image is trusted.

resolve → verify trust → fetch attestations → evaluate policy → ``Verdict``.

Every entry point (CLI push/pull, servin hooks, the CI gate, the admission webhook) calls
``check_image`` so that a decision and its explanation are the same everywhere. This module never
prints; it raises ``TrustkitError`` only for bad input and environment failures, and returns a
``Verdict`` for every trust or policy refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import FailureKind, PolicyRefusal, UnknownRepositoryError, UntrustedError
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence
from trustkit.verdict import Action, Context, Reason, Verdict

if TYPE_CHECKING:
    from trustkit.collections.model import TrustedTarget
    from trustkit.keys import Key
    from trustkit.model.findings import VerifiedScan
    from trustkit.policy import Policy

_SOURCE = EvidenceSource.TUF_COLLECTION


def _unsigned(message: str, *, digest: str | None = None) -> TrustEvidence:
    return TrustEvidence(
        source=_SOURCE,
        checked=True,
        verified=False,
        digest=digest,
        failure=FailureKind.UNSIGNED,
        message=message,
    )


def _signers(targets: Sequence[TrustedTarget]) -> tuple[SignerIdentity, ...]:
    """Signer identities of the targets that vouch (key ids come with the engine's evidence)."""
    names = dict.fromkeys(s for t in targets for s in t.signers)
    return tuple(SignerIdentity(name=name, role=f"targets/{name}") for name in names)


def check_trust(settings: Settings, ref: refs.ImageRef) -> TrustEvidence:
    """What the trusted collection says about ``ref``. Refusals are evidence, not exceptions:
    the failure kind comes from the error's type, never from its message."""
    from trustkit import collections

    if ref.tag is None:
        return _check_digest_trust(settings, ref)
    tagged = ref.with_tag(ref.tag)  # the tag is what is signed; a digest is checked below
    try:
        target = collections.verify_tag(settings, tagged)
    except UnknownRepositoryError as exc:
        return _unsigned(f"{tagged.familiar} is not signed: {exc}", digest=ref.digest)
    except UntrustedError as exc:  # NotSignedError already names the tag and repository
        return TrustEvidence.refused(_SOURCE, exc, digest=ref.digest)
    if ref.digest is not None and ref.digest != target.digest:
        return TrustEvidence(
            source=_SOURCE,
            checked=True,
            verified=False,
            digest=ref.digest,
            failure=FailureKind.TAG_MOVED,
            message=(
                f"{ref.familiar}: the requested digest {ref.digest} is not the trusted digest "
                f"{target.digest} of tag {ref.tag}"
            ),
        )
    return TrustEvidence(
        source=_SOURCE,
        checked=True,
        verified=True,
        digest=target.digest,
        size=target.size,
        signers=_signers([target]),
        tags=(ref.tag,),
    )


def _check_digest_trust(settings: Settings, ref: refs.ImageRef) -> TrustEvidence:
    """A digest reference is trusted when a signed tag of its collection points at it.

    A digest names content, not who vouched for it: fail closed, so that ``name@sha256:...``
    cannot route around content trust (an admission request can name any digest), while the
    webhook's own pins and servin's pulls by a signed digest keep working. Every signed tag
    pointing at the digest is recorded: tag-scoped policies scope the digest by all of them.
    """
    from trustkit import collections

    assert ref.digest is not None
    try:
        targets = collections.list_signed_tags(settings, ref.gun)
    except UnknownRepositoryError as exc:
        return _unsigned(f"{ref.familiar} is not signed: {exc}", digest=ref.digest)
    except UntrustedError as exc:
        return TrustEvidence.refused(_SOURCE, exc, digest=ref.digest)
    matching = [t for t in targets if t.digest == ref.digest]
    if not matching:
        return _unsigned(
            f"{ref.digest} is not the signed digest of any tag of {ref.repository}",
            digest=ref.digest,
        )
    return TrustEvidence(
        source=_SOURCE,
        checked=True,
        verified=True,
        digest=ref.digest,
        size=matching[0].size,
        signers=_signers(matching),
        tags=tuple(t.tag for t in matching),
    )


def trust_once_signed(
    settings: Settings, ref: refs.ImageRef, digest: str, size: int | None
) -> TrustEvidence:
    """What content trust will say about ``ref`` once the push path signs it with our keys.

    Policy runs before the tag is signed (a BLOCKed image is never signed), so a
    ``require_signed`` policy is judged against the signature this push is about to make: the
    roles our keys sign the tag into, as ``sign_tag`` chooses them. Without a usable key the
    signing step would fail anyway; that error surfaces here, before anything is signed.
    """
    from trustkit.collections import planned_signers

    names = planned_signers(settings, ref.gun)
    return TrustEvidence(
        source=_SOURCE,
        checked=True,
        verified=True,
        digest=digest,
        size=size,
        signers=tuple(SignerIdentity(name=n, role=f"targets/{n}") for n in names),
        tags=(ref.tag,) if ref.tag is not None else (),
    )


def _resolve_untrusted_digest(settings: Settings, ref: refs.ImageRef) -> str:
    if ref.digest is not None:
        return ref.digest
    from trustkit.registry import resolve_digest

    return resolve_digest(settings, ref).digest


def _scanner_keys(settings: Settings, policies: Sequence[Policy]) -> list[Key]:
    """Keys whose scan attestations may count: local scanner keys and the policies' keys."""
    from trustkit.attest.service import default_trusted_keys

    keys: dict[str, Key] = {key.keyid: key for key in default_trusted_keys(settings)}
    for policy in policies:
        for key in policy.scanner_keys():
            keys[key.keyid] = key
    return list(keys.values())


def fetch_scans(
    settings: Settings, ref: refs.ImageRef, digest: str, policies: Sequence[Policy]
) -> tuple[tuple[VerifiedScan, ...], tuple[str, ...]]:
    from trustkit.attest.service import verified_scans

    keys = _scanner_keys(settings, policies)
    scans, unverified = verified_scans(settings, str(ref.with_digest(digest)), trusted_keys=keys)
    return tuple(scans), tuple(unverified)


def check_image(
    settings: Settings,
    reference: str,
    *,
    context: Context,
    policy_files: Sequence[Path] = (),
    policies: Sequence[Policy] | None = None,
    now: datetime | None = None,
    require_trust: bool | None = None,
    trust: TrustEvidence | None = None,
) -> Verdict:
    """Decide about one image. ``require_trust`` defaults to ``settings.content_trust``.

    With content trust on, an unsigned, stale, rolled-back or tampered tag is a BLOCK before any
    policy runs. Policies (from the policy directory and ``policy_files``) are then evaluated
    over the trust evidence and the verified scan attestations of the resolved digest; a policy
    applies by every name of the content (``trustkit.policy.scope``), so a digest reference is
    scoped by every signed tag pointing at it, and tag-scoped policies apply when no tag is known.
    ``trust`` replaces the trust lookup (the push path: the signature about to be made).
    """
    from trustkit.policy import ImageFacts, ScopeSubject, evaluate, load_policies

    ref = refs.parse(reference)
    clock = now or datetime.now(UTC)
    if policies is None:
        policies = load_policies(settings, extra_files=list(policy_files))
    in_context = [p for p in policies if p.applies_in(context)]
    # a push writes its tag: the tag names the pushed digest whatever the trust data says yet
    known_tags = (ref.tag,) if context is Context.PUSH and ref.tag is not None else ()
    asked = ScopeSubject.of(ref, ref.digest, known_tags=known_tags)
    candidates = [p for p in in_context if asked.may_be_in_scope(p.scope, p.exclude)]
    enforce_trust = settings.content_trust if require_trust is None else require_trust
    needs_trust = (
        enforce_trust
        or any(p.requires_signed for p in candidates)
        # a digest's tags come from the trust data; tag-scoped policies need them
        or (not asked.tag_known and any(p.tag_scoped for p in candidates))
    )

    if trust is None:
        trust = check_trust(settings, ref) if needs_trust else TrustEvidence.not_checked()
    if enforce_trust and not trust.verified:
        if trust.unsigned and trust.message:
            message = trust.message  # names the image and says it is not signed
        else:
            message = f"{ref.familiar} is not trusted: {trust.message or 'no valid signature'}"
        reason = Reason(
            rule="trust",
            message=message,
            remedy=(
                f"sign it (SERVIN_CONTENT_TRUST=1 trustkit push ... or trustkit trust sign "
                f"{ref.familiar}), or pull by a trusted digest"
            ),
        )
        return Verdict(
            reference=str(ref),
            context=context,
            allowed=False,
            action=Action.BLOCK,
            digest=None,
            reasons=(reason,),
            evidence=trust,
        )

    digest = (trust.digest if trust.verified else None) or ref.digest
    subject = ScopeSubject.of(ref, digest, trust, known_tags=known_tags)
    matching = [p for p in in_context if subject.in_scope(p.scope, p.exclude)]
    if digest is None and matching:
        digest = _resolve_untrusted_digest(settings, ref)
        subject = ScopeSubject.of(ref, digest, trust, known_tags=known_tags)
        matching = [p for p in in_context if subject.in_scope(p.scope, p.exclude)]

    scans: tuple[VerifiedScan, ...] = ()
    unverified: tuple[str, ...] = ()
    if digest is not None and any(p.needs_scans for p in matching):
        scans, unverified = fetch_scans(settings, ref, digest, matching)

    facts = ImageFacts(
        reference=str(ref),
        digest=digest,
        trust=trust,
        scans=scans,
        unverified_scans=unverified,
        known_tags=known_tags,
    )
    return evaluate(matching, facts, context=context, now=clock).verdict(facts, context=context)


def require_allowed(verdict: Verdict) -> Verdict:
    """Raise ``PolicyRefusal`` for a BLOCK verdict (exit 1, one line naming every reason)."""
    if verdict.allowed:
        return verdict
    remedies = [r.remedy for r in verdict.reasons if r.remedy]
    raise PolicyRefusal(
        f"refused {verdict.summary()}",
        hint=remedies[0] if remedies else "run trustkit policy eval --explain for details",
    )
