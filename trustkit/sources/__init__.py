"""Evidence sources beyond trustkit's own collections: cosign key-based signatures and keyless
Sigstore bundles. Each answers one question, "what vouches for this digest", as
``TrustEvidence`` (``trustkit.model.evidence``); the TUF/Notary source is
``trustkit.collections.trust_evidence``.

Reading is split in two so policy evaluation stays free of I/O: ``fetch_material`` reads every
signature artifact attached to a digest (unverified), and each source verifies that material
against what a policy trusts (keys, identities, trusted roots), in process.
"""

from __future__ import annotations

from trustkit.sources.model import (
    BundleArtifact,
    DigestEvidenceSource,
    SignatureMaterial,
    SimpleSigningLayer,
)

__all__ = ["BundleArtifact", "DigestEvidenceSource", "SignatureMaterial", "SimpleSigningLayer"]
