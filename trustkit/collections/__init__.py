"""Trusted collections: the TUF metadata engine behind ``trustkit trust`` (DCT semantics)."""

from __future__ import annotations

from trustkit.collections.engine import (
    SignOutcome,
    add_signer,
    inspect,
    list_signed_tags,
    open_store,
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
    "SignOutcome",
    "TrustedTarget",
    "add_signer",
    "inspect",
    "list_signed_tags",
    "open_store",
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
