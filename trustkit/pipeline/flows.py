"""Flows written once: push (gate → upload → sign → tag), pull (verdict → fetch that digest),
post-push. Every entry point composes these; the registry adapter only moves bytes.

The order "policy first, then sign" lives in ``sign_unless_blocked`` alone: ``push_image`` (the
CLI) and ``post_push`` (servin's hook) both go through it, so a BLOCKed image is never signed by
either. Issue 15 (refuse before the upload) is a local change to ``push_image``: run the gate
on the source's digest before ``copy_image``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import (
    AuthenticationError,
    BadInputError,
    DigestMismatchError,
    NotFoundError,
    NotSignedError,
    TagMovedError,
    UnknownRepositoryError,
    UnreachableError,
)
from trustkit.pipeline.check import check_image, require_allowed, trust_once_signed
from trustkit.services import Services, as_services
from trustkit.verdict import AttestationDetail, Context, Verdict

if TYPE_CHECKING:
    from trustkit.collections import TrustedTarget
    from trustkit.collections.cosigning import PendingView
    from trustkit.collections.engine import SignOutcome
    from trustkit.registry import Descriptor, ImageLocation, ManifestBlob, RegistryLocation

_log = logging.getLogger(__name__)

#: runs after the upload and before signing; raises (``PolicyRefusal``) to refuse
PushGate = Callable[["Descriptor"], Verdict]

_SIGN_HINT = (
    "sign it (trustkit push with SERVIN_CONTENT_TRUST=1, or trustkit trust sign), "
    "or pull with --disable-content-trust if you accept unsigned content"
)


@dataclass(frozen=True)
class PushResult:
    source: str
    destination: str
    descriptor: Descriptor
    signed_roles: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    #: the signature is a pending change awaiting co-signers (releases threshold)
    pending: PendingView | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "destination": self.destination,
            "digest": self.descriptor.digest,
            "size": self.descriptor.size,
            "mediaType": self.descriptor.media_type,
            "signed": bool(self.signed_roles),
            "roles": list(self.signed_roles),
        }
        if self.verdict is not None:
            out["verdict"] = self.verdict.to_dict()
        if self.pending is not None:
            out["signed"] = False
            out["pending"] = self.pending.to_json()
        return out


@dataclass(frozen=True)
class PullResult:
    ref: refs.ImageRef
    descriptor: Descriptor
    verified: bool
    #: the TrustedTarget from verify_tag when content trust resolved the tag
    trusted: TrustedTarget | None = None
    dest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": str(self.ref),
            "digest": self.descriptor.digest,
            "size": self.descriptor.size,
            "mediaType": self.descriptor.media_type,
            "verified": self.verified,
        }
        if self.trusted is not None:
            out["signers"] = list(self.trusted.signers)
            out["role"] = self.trusted.role
        if self.dest:
            out["dest"] = self.dest
        return out


# --- push -----------------------------------------------------------------------------------
def push_verdict(
    services: Services | Settings,
    pushed: refs.ImageRef,
    size: int | None,
    *,
    sign: bool,
    policy_files: Sequence[Path] = (),
    now: datetime | None = None,
) -> Verdict:
    """Policy for a pushed digest (``pushed`` names it) before its tag is signed.

    Trust is what the push grants: with ``sign`` a ``require_signed`` policy is judged against
    the signature about to be made (the roles our keys sign into), never against the old tag.
    """
    services = as_services(services)
    assert pushed.digest is not None
    granted = (
        trust_once_signed(services, pushed, pushed.digest, size)
        if sign and pushed.tag is not None
        else None
    )
    return check_image(
        services,
        str(pushed),
        context=Context.PUSH,
        policy_files=policy_files,
        now=now,
        require_trust=False,  # the tag is about to be signed: trust is what we grant here
        trust=granted,
    )


def push_gate(
    services: Services | Settings,
    dest: str,
    *,
    policy_files: Sequence[Path] = (),
    scan: bool = False,
    report: Path | None = None,
    scanner_command: str | None = None,
    scanner_key: str | None = None,
    now: datetime | None = None,
    sign: bool = False,
) -> PushGate:
    """What the push path runs after the upload and before signing the tag.

    With ``scan`` the scan report (given, or produced by the scanner command) is attested to the
    pushed digest first; then policy decides about that digest. A BLOCK raises, so the tag is
    never signed; WARN and AUDIT come back in the Verdict for the caller to print. With ``sign``
    (the push signs the tag next) ``require_signed`` is judged against that signature.
    """
    services = as_services(services)

    def gate(descriptor: Descriptor) -> Verdict:
        pushed = refs.parse(dest).with_digest(descriptor.digest)
        attestation: AttestationDetail | None = None
        if scan:
            from trustkit.attest.service import scan_and_attest

            attested = scan_and_attest(
                services,
                str(pushed),
                report=report,
                scanner_command=scanner_command,
                key_name=scanner_key,
            )
            attestation = AttestationDetail(
                scanner=attested.report.scanner.name,
                findings=len(attested.report.findings),
                counts=attested.report.counts(),
                predicate_type=attested.predicate_type,
                signer=attested.signer_keyid,
                tag=attested.attached.att_tag,
            )
        verdict = push_verdict(
            services, pushed, descriptor.size, sign=sign, policy_files=policy_files, now=now
        )
        if attestation is not None:
            details = dataclasses.replace(verdict.details, attestation=attestation)
            verdict = dataclasses.replace(verdict, details=details)
        return require_allowed(verdict)

    return gate


def sign_unless_blocked(
    services: Services,
    ref: refs.ImageRef,
    descriptor: Descriptor,
    *,
    sign: bool,
    gate: PushGate | None,
) -> tuple[Verdict | None, SignOutcome | None]:
    """Check policy, then sign: the one place that order is written.

    ``gate`` decides about the pushed digest (it may raise to refuse, as ``push_gate`` does);
    a BLOCK verdict is returned unsigned. With ``sign`` and a tag, the tag is signed for the
    digest, or, below a releases threshold, proposed as a pending change for co-signers.
    """
    verdict = gate(descriptor) if gate is not None else None
    if verdict is not None and not verdict.allowed:
        return verdict, None
    if not sign or ref.tag is None:
        return verdict, None
    from trustkit.collections import sign_or_propose

    outcome = sign_or_propose(
        services, ref.with_tag(ref.tag), digest=descriptor.digest, size=descriptor.size
    )
    if outcome.published and "cosign" in services.settings.signature_formats:
        write_cosign_signatures(services, ref.with_tag(ref.tag), descriptor)
    return verdict, outcome


def write_cosign_signatures(
    services: Services, ref: refs.ImageRef, descriptor: Descriptor
) -> list[str]:
    """After the tag is signed in its collection: the same keys sign it the way cosign and
    skopeo verify (``trustkit.sources.cosign``); returns one notice per key that cannot."""
    from trustkit.sources.cosign import sign_pushed, signing_keyids

    written = sign_pushed(services, ref, descriptor, signing_keyids(services, ref))
    for notice in written.notices:
        _log.warning("%s", notice)
    return written.notices


def push_image(
    services: Services | Settings,
    src: str,
    dest: str,
    *,
    sign: bool,
    gate: PushGate | None = None,
) -> PushResult:
    """Copy ``src`` to ``dest``; with ``sign`` also sign ``dest``'s tag for the pushed digest.

    ``gate`` (scan attestation and policy, from ``push_gate``) runs after the upload and before
    signing; it raises to refuse, so a blocked image is never signed.
    """
    from trustkit.registry import copy_image, open_image_location

    services = as_services(services)
    dest_ref: refs.ImageRef | None = None
    if not dest.startswith("oci:"):
        dest_ref = refs.parse(dest)
    if sign:
        if dest_ref is None:
            raise BadInputError(
                f"content trust signs registry tags, and {dest} is an OCI layout",
                hint="push to a registry reference, or pass --disable-content-trust",
            )
        if dest_ref.tag is None or dest_ref.digest is not None:
            raise BadInputError(
                f"content trust needs a tag to sign: {dest}",
                hint="push to IMAGE:TAG, or pass --disable-content-trust",
            )
    source = open_image_location(services.registries, src)
    target = open_image_location(services.registries, dest)
    try:
        descriptor = copy_image(source, target)
    finally:
        source.close()
        target.close()
    if dest_ref is None:
        verdict = gate(descriptor) if gate is not None else None
        return PushResult(source.describe(), target.describe(), descriptor, [], verdict)
    verdict, outcome = sign_unless_blocked(services, dest_ref, descriptor, sign=sign, gate=gate)
    roles = list(outcome.roles) if outcome is not None else []
    pending = outcome.pending if outcome is not None else None
    return PushResult(source.describe(), target.describe(), descriptor, roles, verdict, pending)


def post_push(
    services: Services | Settings,
    reference: str,
    *,
    digest: str,
    size: int,
    media_type: str | None = None,
) -> tuple[Verdict, SignOutcome | None]:
    """servin's post-push: policy for what servin uploaded, then (content trust on) sign its
    tag. A BLOCK comes back as the verdict, unsigned; a push by digest has no tag to sign."""
    services = as_services(services)
    pushed = refs.parse(reference).with_digest(digest)
    sign = services.settings.content_trust

    def gate(descriptor: Descriptor) -> Verdict:
        return push_verdict(services, pushed, descriptor.size, sign=sign)

    from trustkit.registry.model import Descriptor as PushedDescriptor

    pushed_descriptor = PushedDescriptor(media_type or "", digest, size)
    verdict, outcome = sign_unless_blocked(
        services, refs.parse(reference), pushed_descriptor, sign=sign, gate=gate
    )
    assert verdict is not None
    return verdict, outcome


# --- pull -----------------------------------------------------------------------------------
def _verified_target(services: Services, image: refs.ImageRef) -> TrustedTarget:
    from trustkit.collections import verify_tag

    try:
        return verify_tag(services, image)
    except UnknownRepositoryError as exc:
        raise NotSignedError(f"{image.familiar} is not signed: {exc}", hint=_SIGN_HINT) from exc
    except NotSignedError as exc:
        if exc.hint is None:
            exc.hint = _SIGN_HINT
        raise


def _check_tag_not_moved(source: RegistryLocation, trusted: TrustedTarget) -> ManifestBlob | None:
    """Refuse when the registry's tag names other content than the signed digest.

    The signed digest is what gets fetched either way; this catches a tag overwritten after
    signing (an unsigned push, or tampering) so the user hears about it instead of silently
    getting older content. Without mirrors the tag's manifest is fetched and hashed here and
    handed back, so a verified pull costs no extra round trip over an unverified one; with
    mirrors only a HEAD is asked of the registry (content comes from the mirrors by digest), and
    when the registry cannot be reached the signed digest alone decides.
    """
    tag = source.ref.tag or "latest"
    fetched: ManifestBlob | None = None
    try:
        if source.mirrors:
            current = source.client.head_manifest(source.ref.path, tag)
            current_digest = current.digest if current is not None else None
        else:
            current = None
        if current is None:
            fetched = source.client.get_manifest(source.ref.path, tag)
            current_digest = fetched.digest  # hashed from the bytes, never a header
    except NotFoundError:
        current_digest = None
    except (UnreachableError, AuthenticationError):
        if source.mirrors:
            return None
        raise
    if current_digest != trusted.digest:
        where = f"{source.ref.repository}:{tag}"
        now = current_digest or "nothing"
        raise TagMovedError(
            f"{where} in the registry points at {now}, but its signed digest is "
            f"{trusted.digest}: the tag was overwritten without being signed",
            hint=(
                f"sign the new image (trustkit trust sign {where}) or pull the signed one "
                f"by digest ({source.ref.repository}@{trusted.digest})"
            ),
        )
    return fetched


def pull_checked(
    services: Services,
    ref: str,
    *,
    dest: str | None = None,
    verify: bool,
    policy_files: Sequence[Path] = (),
) -> tuple[Verdict | None, PullResult]:
    """The pull flow: the pipeline decides, then exactly the digest it judged is fetched.

    Fetching the tag again after the verdict would let a tag moved in between (or a registry
    answering differently the second time) deliver content no policy looked at.
    """
    verdict: Verdict | None = None
    if not ref.startswith("oci:"):
        verdict = require_allowed(
            check_image(
                services, ref, context=Context.PULL, policy_files=policy_files, require_trust=verify
            )
        )
    judged = verdict.digest if verdict is not None else None
    return verdict, pull_image(services, ref, dest=dest, verify=verify, judged_digest=judged)


def pull_image(
    services: Services | Settings,
    ref: str | refs.ImageRef,
    *,
    dest: str | None = None,
    verify: bool,
    judged_digest: str | None = None,
) -> PullResult:
    """Fetch ``ref``; with ``verify`` its tag is resolved through verified trust data first.

    A reference with a digest skips the tag lookup, but every byte is still checked against it.
    ``judged_digest`` is the digest a verdict was given for: exactly that content is fetched, and
    trust data that now resolves the tag to anything else is refused.
    """
    from trustkit.registry import RegistryLocation, fetch_image, open_image_location

    services = as_services(services)
    image = refs.parse(ref) if isinstance(ref, str) else ref
    trusted: TrustedTarget | None = None
    expected_digest = image.digest
    expected_size: int | None = None
    if expected_digest is None and verify:
        trusted = _verified_target(services, image)
        expected_digest, expected_size = trusted.digest, trusted.size
    if judged_digest is not None:
        if expected_digest is not None and expected_digest != judged_digest:
            raise DigestMismatchError(
                f"{image.familiar} now resolves to {expected_digest}, but the verdict was "
                f"given for {judged_digest}: refusing to fetch content no policy judged",
                hint="pull again",
            )
        expected_digest = judged_digest
    source = open_image_location(services.registries, str(image))
    prefetched: ManifestBlob | None = None
    if trusted is not None and isinstance(source, RegistryLocation):
        try:
            prefetched = _check_tag_not_moved(source, trusted)
        except BaseException:
            source.close()
            raise
    target: ImageLocation | None = open_image_location(services.registries, dest) if dest else None
    try:
        dest_reference = None
        if target is not None and target.reference is None and image.tag is not None:
            dest_reference = image.tag
        descriptor = fetch_image(
            source,
            expected_digest=expected_digest,
            expected_size=expected_size,
            dest=target,
            dest_reference=dest_reference,
            top=prefetched,
        )
    finally:
        source.close()
        if target is not None:
            target.close()
    return PullResult(
        image,
        descriptor,
        verified=verify or image.digest is not None,
        trusted=trusted,
        dest=target.describe() if target is not None else None,
    )
