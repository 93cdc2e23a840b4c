"""Push and pull flows: copy/fetch plus content trust (sign on push, verify on pull).

Library functions the CLI, the servin hooks and the enforce pipeline share. Content trust comes
from ``trustkit.collections`` (``sign_tag`` / ``verify_tag``), imported only when needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trustkit.config import Settings
from trustkit.errors import (
    AuthenticationError,
    BadInputError,
    NotSignedError,
    UnknownRepositoryError,
    UnreachableError,
)
from trustkit.refs import ImageRef, parse
from trustkit.registry.client import NotFoundError
from trustkit.registry.copy import copy_image, fetch_image
from trustkit.registry.location import ImageLocation, RegistryLocation, open_image_location
from trustkit.registry.model import Descriptor, ManifestBlob

if TYPE_CHECKING:
    from collections.abc import Callable

    from trustkit.collections import TrustedTarget
    from trustkit.collections.cosigning import PendingView
    from trustkit.verdict import Verdict


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
    ref: ImageRef
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


def push_image(
    settings: Settings,
    src: str,
    dest: str,
    *,
    sign: bool,
    gate: Callable[[Descriptor], Verdict] | None = None,
) -> PushResult:
    """Copy ``src`` to ``dest``; with ``sign`` also sign ``dest``'s tag for the pushed digest.

    ``gate`` (scan attestation and policy, from ``trustkit.enforce.push_gate``) runs after the
    upload and before signing; it raises to refuse, so a blocked image is never signed.
    """
    dest_ref: ImageRef | None = None
    if not dest.startswith("oci:"):
        dest_ref = parse(dest)
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
    source = open_image_location(settings, src)
    target = open_image_location(settings, dest)
    try:
        descriptor = copy_image(source, target)
    finally:
        source.close()
        target.close()
    verdict = gate(descriptor) if gate is not None else None
    roles: list[str] = []
    pending: PendingView | None = None
    if sign and dest_ref is not None:
        from trustkit.collections import sign_or_propose

        # below a releases threshold the signature waits for co-signers (trust approve)
        outcome = sign_or_propose(
            settings, dest_ref, digest=descriptor.digest, size=descriptor.size
        )
        roles, pending = list(outcome.roles), outcome.pending
    return PushResult(source.describe(), target.describe(), descriptor, roles, verdict, pending)


class TagMovedError(NotSignedError):
    """The registry's tag now names content other than the signed digest."""


_SIGN_HINT = (
    "sign it (trustkit push with SERVIN_CONTENT_TRUST=1, or trustkit trust sign), "
    "or pull with --disable-content-trust if you accept unsigned content"
)


def _verified_target(settings: Settings, image: ImageRef) -> TrustedTarget:
    from trustkit.collections import verify_tag

    try:
        return verify_tag(settings, image)
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


def pull_image(
    settings: Settings, ref: str | ImageRef, *, dest: str | None = None, verify: bool
) -> PullResult:
    """Fetch ``ref``; with ``verify`` its tag is resolved through verified trust data first.

    A reference with a digest skips the tag lookup, but every byte is still checked against it.
    """
    image = parse(ref) if isinstance(ref, str) else ref
    trusted: TrustedTarget | None = None
    expected_digest = image.digest
    expected_size: int | None = None
    if expected_digest is None and verify:
        trusted = _verified_target(settings, image)
        expected_digest, expected_size = trusted.digest, trusted.size
    source = open_image_location(settings, str(image))
    prefetched: ManifestBlob | None = None
    if trusted is not None and isinstance(source, RegistryLocation):
        try:
            prefetched = _check_tag_not_moved(source, trusted)
        except BaseException:
            source.close()
            raise
    target: ImageLocation | None = open_image_location(settings, dest) if dest else None
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
