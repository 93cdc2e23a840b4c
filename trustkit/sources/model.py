"""Signature artifacts found attached to one digest, before anyone verified them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from trustkit.model import TrustEvidence


@dataclass(frozen=True, slots=True)
class SimpleSigningLayer:
    """One cosign signature: a simple-signing payload and the signature over its exact bytes."""

    payload: bytes
    signature: bytes  # decoded from the layer's base64 annotation
    found_in: str  # where it was read ("tag sha256-<hex>.sig", "referrer sha256:...")
    certificate: bytes | None = None  # PEM, keyless signatures only


@dataclass(frozen=True, slots=True)
class BundleArtifact:
    """One Sigstore bundle (JSON bytes) attached to the digest."""

    data: bytes
    found_in: str


@dataclass(frozen=True, slots=True)
class SignatureMaterial:
    """Everything signature-like attached to ``digest``; ``problems`` says what was unreadable."""

    digest: str
    layers: tuple[SimpleSigningLayer, ...] = ()
    bundles: tuple[BundleArtifact, ...] = ()
    problems: tuple[str, ...] = ()

    @classmethod
    def empty(cls, digest: str, problem: str | None = None) -> SignatureMaterial:
        return cls(digest=digest, problems=(problem,) if problem else ())

    def with_layers(self, layers: tuple[SimpleSigningLayer, ...]) -> SignatureMaterial:
        """This material plus ``layers`` (the push path: the signatures it is about to write)."""
        return SignatureMaterial(self.digest, self.layers + layers, self.bundles, self.problems)


class DigestEvidenceSource(Protocol):
    """The one interface of a signature source: evidence about one digest, from the material
    attached to it (``CosignKeySource``, ``KeylessSource``; the TUF/Notary source is
    ``trustkit.collections.trust_evidence``, which reads its own metadata)."""

    def evidence(self, material: SignatureMaterial, *, image: str | None = None) -> TrustEvidence:
        """Verified evidence, or a refusal whose ``failure`` and one-line ``message`` say why."""
        ...
