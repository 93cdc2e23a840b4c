"""PEM in and out: public keys, certificates and (possibly encrypted) private keys."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from trustkit._fs import atomic_write
from trustkit.errors import BadInputError, InputTooLargeError, PassphraseError
from trustkit.keys import _der
from trustkit.keys._sslib import Key, SSlibKey

MAX_KEY_FILE = 64 * 1024
MIN_RSA_BITS = 2048

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_SUPPORTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def _bounded(data: bytes, what: str) -> bytes:
    if len(data) > MAX_KEY_FILE:
        raise InputTooLargeError(f"{what} is larger than the {MAX_KEY_FILE}-byte limit")
    return data


def _first_block(data: bytes, what: str) -> tuple[str, bytes]:
    """(label, DER) of the first PEM block; RFC 1421 headers such as notary's ``role:`` skipped."""
    match = _BLOCK.search(data)
    if match is None:
        raise BadInputError(f"{what} is not PEM (no -----BEGIN ...----- block)")
    label = match.group(1).decode("ascii")
    body = match.group(2)
    if b":" in body:  # headers end at the first blank line
        parts = re.split(rb"\r?\n\r?\n", body, maxsplit=1)
        body = parts[1] if len(parts) == 2 else b""
    try:
        return label, base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadInputError(f"{what}: the {label} block is not valid base64") from None


def _check_supported(key: PublicKeyTypes, what: str) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _SUPPORTED_CURVES):
            raise BadInputError(f"{what}: unsupported elliptic curve {key.curve.name}")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise BadInputError(f"{what}: RSA key of {key.key_size} bits is too small")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise BadInputError(f"{what}: unsupported key type (use ECDSA, Ed25519 or RSA)")


def sslib_key(public: PublicKeyTypes, what: str = "key") -> SSlibKey:
    _check_supported(public, what)
    return SSlibKey.from_crypto(public)


def load_public_key(data: bytes, *, what: str = "public key") -> Key:
    """A PEM ``PUBLIC KEY`` or an X.509 ``CERTIFICATE`` (its subject key) -> SSlibKey."""
    label, der = _first_block(_bounded(data, what), what)
    try:
        if label == "PUBLIC KEY":
            public = serialization.load_der_public_key(der)
        elif label == "CERTIFICATE":
            from cryptography import x509  # ~40 ms of imports, only for certificates

            public = x509.load_der_x509_certificate(der).public_key()
        elif "PRIVATE KEY" in label:
            raise BadInputError(f"{what} is a private key: give the public key (.pub) instead")
        else:
            raise BadInputError(f"{what}: expected a PUBLIC KEY or CERTIFICATE, got {label}")
    except ValueError as exc:
        raise BadInputError(f"{what}: cannot parse {label}: {exc}") from None
    return sslib_key(public, what)


def public_key_pem(key: Key) -> bytes:
    """SubjectPublicKeyInfo PEM of an SSlibKey (Ed25519 keys are stored raw, so convert)."""
    if not isinstance(key, SSlibKey):
        raise BadInputError(f"key {key.keyid[:12]} has no PEM form ({type(key).__name__})")
    crypto_key = key._crypto_key()  # the supported public conversion of SSlibKey
    return crypto_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_public_file(path: Path, key: Key, *, overwrite: bool = False) -> Path:
    """Write ``key`` as PEM to ``path`` (0644, atomically); refuse to replace an existing file."""
    if path.exists() and not overwrite:
        raise BadInputError(f"{path} already exists; not overwriting it")
    atomic_write(path, public_key_pem(key), mode=0o644)
    return path


def is_encrypted_pem(data: bytes) -> bool:
    label, _ = _first_block(_bounded(data, "private key"), "private key")
    return label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in data


def load_private_pem(
    data: bytes, passphrase: str | None = None, *, what: str = "private key"
) -> PrivateKeyTypes:
    """Plain or encrypted PKCS#8, SEC1/PKCS#1 ("traditional") or a Notary/DCT key file."""
    label, der = _first_block(_bounded(data, what), what)
    if "PRIVATE KEY" not in label:
        raise BadInputError(f"{what}: expected a PRIVATE KEY block, got {label}")
    encrypted = is_encrypted_pem(data)
    if encrypted and passphrase is None:
        raise PassphraseError(f"{what} is encrypted and no passphrase was given")
    secret = passphrase.encode("utf-8") if passphrase is not None else b""
    if label == "ENCRYPTED PRIVATE KEY":
        try:
            key = serialization.load_der_private_key(der, secret)
        except ValueError:
            key = _load_dct(der, secret, what)
    elif encrypted:  # traditional OpenSSL encryption (Proc-Type / DEK-Info headers)
        try:
            key = serialization.load_pem_private_key(data, secret)
        except ValueError:
            raise PassphraseError(f"wrong passphrase for {what} (or a damaged file)") from None
    else:
        try:
            key = serialization.load_der_private_key(_der.as_version0(der), None)
        except (ValueError, _der.DerError) as exc:
            raise BadInputError(f"{what} cannot be read: {exc}") from None
    _check_supported(key.public_key(), what)
    return key


def _load_dct(der: bytes, secret: bytes, what: str) -> PrivateKeyTypes:
    """The Notary/DCT fallback; a failure here is reported as a wrong passphrase."""
    try:
        inner = _der.decrypt_pbes2(der, secret)
    except _der.DerError as exc:
        raise PassphraseError(f"cannot decrypt {what} (wrong passphrase?): {exc}") from None
    except ValueError:
        raise PassphraseError(f"wrong passphrase for {what}") from None
    try:
        return serialization.load_der_private_key(_der.as_version0(inner), None)
    except (ValueError, _der.DerError):
        raise PassphraseError(f"wrong passphrase for {what}") from None
