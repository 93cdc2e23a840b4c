"""The one pipeline that decides whether an image is trusted.

resolve → verify trust → fetch attestations → evaluate policy → ``Verdict``.

Every entry point (CLI push/pull, servin hooks, the CI gate, the admission webhook) calls
``check_image`` so that a decision and its explanation are the same everywhere. This module never
prints; it raises ``TrustkitError`` only for bad input and environment failures, and returns a
``Verdict`` for every trust or policy refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import (
    NotSignedError,
    PolicyRefusal,
    UnknownRepositoryError,
    UntrustedError,
)
from trustkit.verdict import Action, Context, Reason, Verdict

if TYPE_CHECKING:
    from trustkit.attest.model import VerifiedScan
    from trustkit.keys import Key
    from trustkit.policy import Policy


@dataclass(frozen=True)
class TrustOutcome:
    """What content trust said about a reference, before any policy looks at it."""

    checked: bool
    signed: bool
    digest: str | None = None
    size: int | None = None
    signers: tuple[str, ...] = ()
    error: str | None = None
    #: no signature at all (unknown collection, tag absent), as opposed to trust data that
    #: failed verification (expired, rolled back, tampered)
    unsigned: bool = False


def check_trust(settings: Settings, ref: refs.ImageRef) -> TrustOutcome:
    """Resolve ``ref`` through verified trust data. Refusals become an unsigned outcome."""
    from trustkit import collections

    if ref.tag is None:
        return _check_digest_trust(settings, ref)
    tagged = ref.with_tag(ref.tag)  # the tag is what is signed; a digest is checked below
    try:
        target = collections.verify_tag(settings, tagged)
    except UnknownRepositoryError as exc:
        error = f"{tagged.familiar} is not signed: {exc}"
        return TrustOutcome(checked=True, signed=False, error=error, unsigned=True)
    except NotSignedError as exc:  # already says which tag of which repository is not signed
        return TrustOutcome(checked=True, signed=False, error=str(exc), unsigned=True)
    except UntrustedError as exc:
        return TrustOutcome(checked=True, signed=False, error=str(exc))
    if ref.digest is not None and ref.digest != target.digest:
        return TrustOutcome(
            checked=True,
            signed=False,
            error=(
                f"{ref.familiar}: the requested digest {ref.digest} is not the trusted digest "
                f"{target.digest} of tag {ref.tag}"
            ),
        )
    return TrustOutcome(
        checked=True,
        signed=True,
        digest=target.digest,
        size=target.size,
        signers=tuple(target.signers),
    )


def _check_digest_trust(settings: Settings, ref: refs.ImageRef) -> TrustOutcome:
    """A digest reference is trusted when a signed tag of its collection points at it.

    A digest names content, not who vouched for it: fail closed, so that ``name@sha256:...``
    cannot route around content trust (an admission request can name any digest), while the
    webhook's own pins and servin's pulls by a signed digest keep working.
    """
    from trustkit import collections

    assert ref.digest is not None
    try:
        targets = collections.list_signed_tags(settings, ref.gun)
    except UnknownRepositoryError as exc:
        return TrustOutcome(
            checked=True,
            signed=False,
            digest=ref.digest,
            error=f"{ref.familiar} is not signed: {exc}",
            unsigned=True,
        )
    except UntrustedError as exc:
        return TrustOutcome(checked=True, signed=False, digest=ref.digest, error=str(exc))
    matching = [t for t in targets if t.digest == ref.digest]
    if not matching:
        return TrustOutcome(
            checked=True,
            signed=False,
            digest=ref.digest,
            error=f"{ref.digest} is not the signed digest of any tag of {ref.repository}",
            unsigned=True,
        )
    signers = tuple(dict.fromkeys(s for t in matching for s in t.signers))
    return TrustOutcome(
        checked=True, signed=True, digest=ref.digest, size=matching[0].size, signers=signers
    )


def trust_once_signed(
    settings: Settings, ref: refs.ImageRef, digest: str, size: int | None
) -> TrustOutcome:
    """What content trust will say about ``ref`` once the push path signs it with our keys.

    Policy runs before the tag is signed (a BLOCKed image is never signed), so a
    ``require_signed`` policy is judged against the signature this push is about to make: the
    roles our keys sign the tag into, as ``sign_tag`` chooses them. Without a usable key the
    signing step would fail anyway; that error surfaces here, before anything is signed.
    """
    from trustkit.collections import planned_signers

    signers = planned_signers(settings, ref.gun)
    return TrustOutcome(checked=True, signed=True, digest=digest, size=size, signers=signers)


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
    trust: TrustOutcome | None = None,
) -> Verdict:
    """Decide about one image. ``require_trust`` defaults to ``settings.content_trust``.

    With content trust on, an unsigned, stale, rolled-back or tampered tag is a BLOCK before any
    policy runs. Policies (from the policy directory and ``policy_files``) are then evaluated
    over the trust outcome and the verified scan attestations of the resolved digest.
    ``trust`` replaces the trust lookup (the push path: the signature about to be made).
    """
    from trustkit.policy import ImageFacts, TrustFact, evaluate, load_policies

    ref = refs.parse(reference)
    clock = now or datetime.now(UTC)
    if policies is None:
        policies = load_policies(settings, extra_files=list(policy_files))
    matching = [p for p in policies if p.matches(ref, ref.digest, context=context)]
    enforce_trust = settings.content_trust if require_trust is None else require_trust
    needs_trust = enforce_trust or any(p.requires_signed for p in matching)

    if trust is None:
        trust = (
            check_trust(settings, ref) if needs_trust else TrustOutcome(checked=False, signed=False)
        )
    if enforce_trust and not trust.signed:
        if trust.unsigned and trust.error:
            message = trust.error  # names the image and says it is not signed
        else:
            message = f"{ref.familiar} is not trusted: {trust.error or 'no valid signature'}"
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
        )

    digest = trust.digest or ref.digest
    if digest is None and matching:
        digest = _resolve_untrusted_digest(settings, ref)

    scans: tuple[VerifiedScan, ...] = ()
    unverified: tuple[str, ...] = ()
    if digest is not None and any(p.needs_scans for p in matching):
        scans, unverified = fetch_scans(settings, ref, digest, matching)

    facts = ImageFacts(
        reference=str(ref),
        digest=digest,
        trust=TrustFact(
            checked=trust.checked, signed=trust.signed, signers=trust.signers, error=trust.error
        ),
        scans=scans,
        unverified_scans=unverified,
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
