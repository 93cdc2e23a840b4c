"""Trusted collections: the TUF metadata engine behind ``trustkit trust`` (DCT semantics).

The names below are imported on first use (PEP 562): the engine pulls in python-tuf and
cryptography, which a warm ``trust verify`` (``warm.py``) never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustkit._lazy import lazy_exports

if TYPE_CHECKING:
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
    from trustkit.collections.freshness import (
        RenewalReport,
        TrustExpiringWarning,
        expiry_dates,
        known_collections,
        parse_duration,
        renew_expiring,
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
    "RenewalReport",
    "SignOutcome",
    "SignerChange",
    "TrustExpiringWarning",
    "TrustedTarget",
    "UntrustedTag",
    "add_signer",
    "expiry_dates",
    "inspect",
    "known_collections",
    "list_signed_tags",
    "parse_duration",
    "planned_signer_identities",
    "planned_signers",
    "remove_signer",
    "renew",
    "renew_expiring",
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


#: where each exported name lives
_HOMES = {
    **dict.fromkeys(
        (
            "RemovalResult", "SignerChange", "SignOutcome", "UntrustedTag", "add_signer",
            "inspect", "list_signed_tags", "planned_signer_identities", "planned_signers",
            "remove_signer", "renew", "revoke", "revoke_or_propose", "rotate_key",
            "sign_or_propose", "sign_tag", "sign_tags", "trust_data_version", "trust_evidence",
            "verify_tag",
        ),
        "trustkit.collections.engine",
    ),
    **dict.fromkeys(
        (
            "RenewalReport", "TrustExpiringWarning", "expiry_dates", "known_collections",
            "parse_duration", "renew_expiring",
        ),
        "trustkit.collections.freshness",
    ),
    **dict.fromkeys(
        ("DEFAULT_EXPIRIES", "RELEASES", "Expiries", "TrustedTarget"),
        "trustkit.collections.model",
    ),
}  # fmt: skip


__getattr__ = lazy_exports(__name__, _HOMES)
