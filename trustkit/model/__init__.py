"""Pure data shared by the pipeline, policy and renderers: typed trust evidence."""

from __future__ import annotations

from trustkit.errors import FailureKind
from trustkit.model.evidence import EvidenceSource, SignerIdentity, TrustEvidence

__all__ = ["EvidenceSource", "FailureKind", "SignerIdentity", "TrustEvidence"]
