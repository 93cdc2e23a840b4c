"""Typed trust evidence: what one source said about one image, before any policy looks at it.

Policy rules read these fields; nothing downstream parses a message to learn why trust failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from trustkit.errors import FailureKind, UntrustedError


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
        return cls(
            source=source,
            checked=True,
            verified=False,
            digest=digest,
            failure=error.kind,
            message=message or str(error),
        )

    @classmethod
    def digest_not_of_tag(
        cls, source: EvidenceSource, familiar: str, tag: str, requested: str, trusted: str
    ) -> TrustEvidence:
        """``name:tag@digest`` whose digest is not the one the tag is signed at."""
        return cls(
            source=source,
            checked=True,
            verified=False,
            digest=requested,
            failure=FailureKind.TAG_MOVED,
            message=(
                f"{familiar}: the requested digest {requested} is not the trusted "
                f"digest {trusted} of tag {tag}"
            ),
        )

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
        }
