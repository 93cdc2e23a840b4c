"""trustkit: content trust and supply-chain security for the servin container runtime.

The library is importable without the CLI; heavy modules are imported lazily by their users.
"""

from __future__ import annotations

from trustkit import _signer_backends
from trustkit.config import Settings
from trustkit.errors import (
    BadInputError,
    TrustEnvironmentError,
    TrustkitError,
    UntrustedError,
)
from trustkit.refs import ImageRef, parse

__version__ = "0.1.0"

# before anything imports securesystemslib.signer: its cloud/HSM SDKs load only when used
_signer_backends.install()

__all__ = [
    "BadInputError",
    "ImageRef",
    "Settings",
    "TrustEnvironmentError",
    "TrustkitError",
    "UntrustedError",
    "__version__",
    "parse",
]
