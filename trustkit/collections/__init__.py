"""Trusted collections: the TUF metadata engine behind ``trustkit trust`` (DCT semantics)."""

from __future__ import annotations

from trustkit.collections.engine import (
    RemovalResult,
    SignerChange,
    SignOutcome,
    UntrustedTag,
    add_signer,
    inspect,
    list_signed_tags,
    planned_signer_identities,
    planned_signers,
    remove_signer,
    renew,
    revoke,
    revoke_or_propose,
    rotate_key,
    sign_or_propose,
    sign_tag,
    sign_tags,
    trust_data_version,
    trust_evidence,
    verify_tag,
)
from trustkit.collections.model import (
    DEFAULT_EXPIRIES,
    RELEASES,
    Expiries,
    TrustedTarget,
)

__all__ = [
    "DEFAULT_EXPIRIES",
    "RELEASES",
    "Expiries",
    "RemovalResult",
    "SignOutcome",
    "SignerChange",
    "TrustedTarget",
    "UntrustedTag",
    "add_signer",
    "inspect",
    "list_signed_tags",
    "planned_signer_identities",
    "planned_signers",
    "remove_signer",
    "renew",
    "revoke",
    "revoke_or_propose",
    "rotate_key",
    "sign_or_propose",
    "sign_tag",
    "sign_tags",
    "trust_data_version",
    "trust_evidence",
    "verify_tag",
]
