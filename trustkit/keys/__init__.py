"""Key store: generate, import and unlock signing keys; read public keys and certificates.

The names below are imported on first use (PEP 562): ``trust sign`` starts its key derivation
(``wrap.unlock_ahead``) before securesystemslib and the key store are loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trustkit._lazy import lazy_exports

if TYPE_CHECKING:
    from trustkit.keys._sslib import CryptoSigner, Key, Signature, Signer, SSlibKey
    from trustkit.keys.model import KeyRecord, KeyRole, check_name, key_id_of
    from trustkit.keys.passphrase import PassphraseSource, env_var_for
    from trustkit.keys.pem import (
        is_encrypted_pem,
        load_private_pem,
        load_public_key,
        public_key_pem,
        write_public_file,
    )
    from trustkit.keys.store import KEY_TYPES, KeyStore, generate_public_file

__all__ = [
    "KEY_TYPES",
    "CryptoSigner",
    "Key",
    "KeyRecord",
    "KeyRole",
    "KeyStore",
    "PassphraseSource",
    "SSlibKey",
    "Signature",
    "Signer",
    "check_name",
    "env_var_for",
    "generate_public_file",
    "is_encrypted_pem",
    "key_id_of",
    "load_private_pem",
    "load_public_key",
    "public_key_pem",
    "write_public_file",
]

#: where each exported name lives
_HOMES = {
    **dict.fromkeys(
        ("CryptoSigner", "Key", "Signature", "Signer", "SSlibKey"), "trustkit.keys._sslib"
    ),
    **dict.fromkeys(("KeyRecord", "KeyRole", "check_name", "key_id_of"), "trustkit.keys.model"),
    **dict.fromkeys(("PassphraseSource", "env_var_for"), "trustkit.keys.passphrase"),
    **dict.fromkeys(
        (
            "is_encrypted_pem",
            "load_private_pem",
            "load_public_key",
            "public_key_pem",
            "write_public_file",
        ),
        "trustkit.keys.pem",
    ),
    **dict.fromkeys(("KEY_TYPES", "KeyStore", "generate_public_file"), "trustkit.keys.store"),
}


__getattr__ = lazy_exports(__name__, _HOMES)
