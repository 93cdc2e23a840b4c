"""Tags that hold trust data or signatures, not images: every tag listing skips them."""

from __future__ import annotations

import re

#: trustkit's TUF metadata tags (``trustkit-tuf``, ``trustkit-tuf-claim``; ADR 0011)
TRUST_TAG_PREFIX = "trustkit-tuf"
# cosign's signature/attestation/SBOM tags and the OCI referrers fallback: sha256-<hex>[.suffix]
_DIGEST_TAG_RE = re.compile(r"\Asha256-[0-9a-f]{64}(?:\.[A-Za-z0-9_.-]*)?\Z")


def is_reserved_tag(tag: str) -> bool:
    """Whether ``tag`` names trust data or a signature rather than an image version."""
    return tag.startswith(TRUST_TAG_PREFIX) or bool(_DIGEST_TAG_RE.match(tag))
