"""The x509 certificate a Notary root key is published as (``ecdsa-x509``), made as notary makes
it: self-signed, CN = the GUN, a leaf (not a CA) for code signing, ten years.

The private key may live anywhere a securesystemslib ``Signer`` reaches (a key file, an HSM, a
KMS), so the certificate is not signed by ``cryptography``'s builder, which needs the private key
object: the builder lays out the to-be-signed part, the signer signs those bytes, and the three
parts are joined in DER. The result is checked against its own public key before it is used.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trustkit.errors import BadInputError, KeyStoreError

if TYPE_CHECKING:
    from trustkit.keys import KeyRecord, KeyStore

_SEQUENCE = 0x30
_BIT_STRING = 0x03
_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384]] = {
    "ecdsa-sha2-nistp256": hashes.SHA256,
    "ecdsa-sha2-nistp384": hashes.SHA384,
}


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _algorithm_identifier(certificate: bytes, tbs: bytes) -> bytes:
    """The signatureAlgorithm that follows the to-be-signed part in a certificate's DER."""
    after = certificate[certificate.index(tbs) + len(tbs) :]
    if len(after) < 2 or after[0] != _SEQUENCE or after[1] >= 0x80:
        raise KeyStoreError("cannot lay out the root certificate")
    return after[: 2 + after[1]]


def root_certificate(
    keys: KeyStore, record: KeyRecord, gun: str, now: datetime, lifetime: timedelta
) -> x509.Certificate:
    """A self-signed certificate for the ECDSA key ``record`` naming ``gun``."""
    hash_type = _HASHES.get(record.scheme)
    public_pem = record.public_key.keyval.get("public")
    if record.keytype != "ecdsa" or hash_type is None or not isinstance(public_pem, str):
        raise BadInputError(
            f"a Notary root key must be an ECDSA P-256 or P-384 key, not {record.scheme}"
        )
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gun)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + lifetime)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    # a stand-in key of the same curve and hash gives the layout; only its signature is replaced
    stand_in = builder.sign(ec.generate_private_key(public.curve), hash_type())
    tbs = stand_in.tbs_certificate_bytes
    algorithm = _algorithm_identifier(stand_in.public_bytes(serialization.Encoding.DER), tbs)
    signature = bytes.fromhex(keys.signer(record.keyid).sign(tbs).signature)
    der = _der(_SEQUENCE, tbs + algorithm + _der(_BIT_STRING, b"\x00" + signature))
    certificate = x509.load_der_x509_certificate(der)
    try:
        certificate.verify_directly_issued_by(certificate)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise KeyStoreError(
            f"the root key {record.keyid[:12]} did not sign its certificate correctly"
        ) from exc
    return certificate


def certificate_key(certificate: x509.Certificate) -> dict[str, object]:
    """The certificate as a Notary root key (``ecdsa-x509``: base64 of the PEM)."""
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    return {"keytype": "ecdsa-x509", "keyval": {"private": None, "public": _b64(pem)}}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
