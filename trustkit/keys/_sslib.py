"""securesystemslib's signer classes, imported in one place.

Its package ``__init__`` re-exports them implicitly, which mypy --strict rejects at every import;
import them from here (or from ``trustkit.keys``) instead.
"""

from __future__ import annotations

from securesystemslib.signer import (  # type: ignore[attr-defined]
    CryptoSigner,
    Key,
    Signature,
    Signer,
    SSlibKey,
)

__all__ = ["CryptoSigner", "Key", "SSlibKey", "Signature", "Signer"]
