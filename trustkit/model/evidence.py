"""Typed trust evidence: what one source said about one image, before any policy looks at it.

Policy rules read these fields; nothing downstream parses a message to learn why trust failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from trustkit.errors import (
    BadInputError,
    FailureKind,
    UnknownRepositoryError,
    UntrustedError,
)

if TYPE_CHECKING:
    from trustkit.refs import ImageRef


class EvidenceSource(StrEnum):
    TUF_COLLECTION = "tuf"  # trustkit's TUF collections (DCT layout or hashed bins)
    NOTARY = "notary"  # a Notary v1 server's collection
    COSIGN = "cosign"  # cosign key-based signatures (.sig tag / referrers)
    SIGSTORE = "sigstore"  # keyless Sigstore bundles


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """Who vouched: a signer name (delegation) and the distinct key ids whose signatures count."""

    name: str
    keyids: tuple[str, ...] = ()
    role: str | None = None  # e.g. "targets/releases", "targets/alice"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keyids": list(self.keyids), "role": self.role}


@dataclass(frozen=True, slots=True)
class TrustEvidence:
    """One source's answer for one image reference.

    ``checked`` is False when no trust lookup was made (content trust off, no policy needs it).
    ``verified`` with ``failure`` None means the source vouches for ``digest``; otherwise
    ``failure`` says why not and ``message`` says it for people.
    """

    source: EvidenceSource
    checked: bool
    verified: bool
    digest: str | None = None
    size: int | None = None
    signers: tuple[SignerIdentity, ...] = ()
    #: the signed tags that point at ``digest`` (a digest reference is scoped by all of them)
    tags: tuple[str, ...] = ()
    failure: FailureKind | None = None
    message: str | None = None
    expires: datetime | None = None  # the earliest expiry among the metadata that vouched
    #: whether ``tags`` and ``signers`` cover every signed tag pointing at ``digest``; False
    #: when a tag reference was judged on its own tag's evidence (ADR 0016)
    complete: bool = True

    @property
    def unsigned(self) -> bool:
        """No signature at all, as opposed to trust data that failed verification."""
        return self.failure is FailureKind.UNSIGNED

    @property
    def signer_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.name for s in self.signers))

    @property
    def keyids(self) -> frozenset[str]:
        """Every distinct key whose signature counts (a key in two delegations counts once)."""
        return frozenset(k for s in self.signers for k in s.keyids)

    @classmethod
    def not_checked(cls, source: EvidenceSource = EvidenceSource.TUF_COLLECTION) -> TrustEvidence:
        return cls(source=source, checked=False, verified=False)

    @classmethod
    def refused(
        cls,
        source: EvidenceSource,
        error: UntrustedError,
        *,
        digest: str | None = None,
        message: str | None = None,
    ) -> TrustEvidence:
        """Evidence from a verification error: the kind comes from the error's type."""
        return cls.failed(source, error.kind, message or str(error), digest=digest)

    @classmethod
    def failed(
        cls, source: EvidenceSource, kind: FailureKind, message: str, *, digest: str | None
    ) -> TrustEvidence:
        """A checked refusal: why (``kind``) and, for people, ``message``."""
        return cls(
            source=source,
            checked=True,
            verified=False,
            digest=digest,
            failure=kind,
            message=message,
        )

    @classmethod
    def digest_not_of_tag(
        cls, source: EvidenceSource, familiar: str, tag: str, requested: str, trusted: str
    ) -> TrustEvidence:
        """``name:tag@digest`` whose digest is not the one the tag is signed at."""
        message = (
            f"{familiar}: the requested digest {requested} is not the trusted "
            f"digest {trusted} of tag {tag}"
        )
        return cls.failed(source, FailureKind.TAG_MOVED, message, digest=requested)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "checked": self.checked,
            "verified": self.verified,
            "digest": self.digest,
            "size": self.size,
            "signers": [s.to_dict() for s in self.signers],
            "tags": list(self.tags),
            "failure": self.failure.value if self.failure else None,
            "message": self.message,
            "expires": self.expires.isoformat() if self.expires else None,
            "complete": self.complete,
        }


class SignedTarget(Protocol):
    """One signed tag of a verified collection (TUF or Notary)."""

    @property
    def tag(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def size(self) -> int: ...


T = TypeVar("T", bound=SignedTarget)


def collection_evidence(
    source: EvidenceSource,
    ref: ImageRef,
    *,
    verified: Callable[[], Any],
    find: Callable[[Any, str], T],
    tags_at: Callable[[Any, str], Sequence[T]],
    signers_of: Callable[[Any, T], Iterable[SignerIdentity]],
    expires_of: Callable[[Any, T], datetime],
    every_tag: bool = True,
) -> TrustEvidence:
    """Evidence from a verified collection for a tag, a digest or ``tag@digest``: one shape for
    every collection source. ``verified()`` loads and verifies the collection (its refusals
    become evidence); the other callables read it. A digest is vouched for by every signed tag
    that points at it, and each signer is listed once with all its distinct keys.

    ``every_tag=False`` reads, for a reference naming a tag, only that tag (its role, its
    signers' roles): evidence that is a subset of the full one (``complete`` False), which is
    all a hashed-bins collection needs to fetch one bin. A digest reference reads every tag."""
    digest = ref.digest
    try:
        collection = verified()
        if ref.tag is not None:
            found = find(collection, ref.tag)
            if digest is not None and digest != found.digest:
                return TrustEvidence.digest_not_of_tag(
                    source, ref.familiar, ref.tag, digest, found.digest
                )
            matching = [found]
            if every_tag:  # finding the other tags at the digest reads every role (every bin)
                matching.extend(t for t in tags_at(collection, found.digest) if t != found)
        else:
            if digest is None:
                raise BadInputError("a reference names a tag, a digest or both")
            matching = list(tags_at(collection, digest))
            if not matching:
                message = f"{digest} is not the signed digest of any tag of {ref.repository}"
                return TrustEvidence.failed(source, FailureKind.UNSIGNED, message, digest=digest)
        identities: dict[str, SignerIdentity] = {}
        for target in matching:
            for identity in signers_of(collection, target):
                known = identities.get(identity.name)
                keyids = identity.keyids if known is None else (*known.keyids, *identity.keyids)
                identities[identity.name] = SignerIdentity(
                    identity.name, tuple(sorted(set(keyids))), identity.role
                )
        first = matching[0]
        return TrustEvidence(
            source=source,
            checked=True,
            verified=True,
            digest=first.digest,
            size=first.size,
            signers=tuple(identities.values()),
            tags=tuple(sorted({t.tag for t in matching})),
            expires=min(expires_of(collection, t) for t in matching),
            complete=every_tag or ref.tag is None,
        )
    except UnknownRepositoryError as exc:
        named = ref.with_tag(ref.tag) if ref.tag is not None else ref  # the tag is what is signed
        message = f"{named.familiar} is not signed: {exc}"
        return TrustEvidence.failed(source, FailureKind.UNSIGNED, message, digest=digest)
    except UntrustedError as exc:
        return TrustEvidence.refused(source, exc, digest=digest)
