"""Just enough DER to unwrap PBES2-encrypted PKCS#8 files written by Notary / Docker content trust.

cryptography 45+ refuses those files: their inner PrivateKeyInfo says version 1 (RFC 5958) but
carries no public key. We decrypt PBES2 ourselves and hand cryptography a version-0 structure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

_SEQUENCE = 0x30
_INTEGER = 0x02
_OCTET_STRING = 0x04
_OID = 0x06

_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_PRFS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1.2.840.113549.2.7": hashes.SHA1,
    "1.2.840.113549.2.9": hashes.SHA256,
    "1.2.840.113549.2.10": hashes.SHA384,
    "1.2.840.113549.2.11": hashes.SHA512,
}
_AES_CBC_KEY_BYTES = {
    "2.16.840.1.101.3.4.1.2": 16,
    "2.16.840.1.101.3.4.1.22": 24,
    "2.16.840.1.101.3.4.1.42": 32,
}
MAX_PBKDF2_ITERATIONS = 10_000_000  # the count comes from the file: bound the work it can ask


class DerError(ValueError):
    """Not the DER structure we expected."""


@dataclass(frozen=True)
class _Tlv:
    tag: int
    start: int  # first content byte
    end: int  # one past the last content byte

    def content(self, data: bytes) -> bytes:
        return data[self.start : self.end]


def _read(data: bytes, pos: int, end: int | None = None) -> _Tlv:
    limit = len(data) if end is None else end
    if pos + 2 > limit:
        raise DerError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > limit:
            raise DerError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > limit:
        raise DerError("truncated DER")
    return _Tlv(tag, pos, pos + length)


def _children(data: bytes, parent: _Tlv) -> list[_Tlv]:
    if parent.tag != _SEQUENCE:
        raise DerError("expected a SEQUENCE")
    items = []
    pos = parent.start
    while pos < parent.end:
        item = _read(data, pos, parent.end)
        items.append(item)
        pos = item.end
    return items


def _oid(data: bytes, tlv: _Tlv) -> str:
    if tlv.tag != _OID:
        raise DerError("expected an OBJECT IDENTIFIER")
    raw = tlv.content(data)
    if not raw:
        raise DerError("empty OID")
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _expect(tlv: _Tlv, tag: int, what: str) -> _Tlv:
    if tlv.tag != tag:
        raise DerError(f"expected {what}")
    return tlv


def _int(data: bytes, tlv: _Tlv) -> int:
    return int.from_bytes(_expect(tlv, _INTEGER, "an INTEGER").content(data), "big")


def decrypt_pbes2(der: bytes, passphrase: bytes) -> bytes:
    """EncryptedPrivateKeyInfo (PBES2, PBKDF2, AES-CBC) -> the inner PrivateKeyInfo DER.

    Raises DerError for structures we do not handle and ValueError("bad decrypt") when the
    padding is wrong, which almost always means a wrong passphrase.
    """
    top = _read(der, 0)
    algorithm, encrypted = _children(der, top)[:2]
    alg_oid, params = _children(der, algorithm)[:2]
    if _oid(der, alg_oid) != _PBES2:
        raise DerError("not PBES2")
    kdf, cipher = _children(der, params)[:2]
    kdf_oid, kdf_params = _children(der, kdf)[:2]
    if _oid(der, kdf_oid) != _PBKDF2:
        raise DerError("PBES2 key derivation is not PBKDF2")
    kdf_items = _children(der, kdf_params)
    salt = _expect(kdf_items[0], _OCTET_STRING, "a salt").content(der)
    iterations = _int(der, kdf_items[1])
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise DerError(f"unreasonable PBKDF2 iteration count {iterations}")
    prf: Callable[[], hashes.HashAlgorithm] = hashes.SHA1
    for item in kdf_items[2:]:
        if item.tag == _SEQUENCE:  # the PRF AlgorithmIdentifier; keyLength (INTEGER) is ignored
            prf_oid = _oid(der, _children(der, item)[0])
            if prf_oid not in _PRFS:
                raise DerError(f"unsupported PBKDF2 PRF {prf_oid}")
            prf = _PRFS[prf_oid]
    cipher_oid, iv_tlv = _children(der, cipher)[:2]
    key_bytes = _AES_CBC_KEY_BYTES.get(_oid(der, cipher_oid))
    if key_bytes is None:
        raise DerError("PBES2 cipher is not AES-CBC")
    iv = _expect(iv_tlv, _OCTET_STRING, "an IV").content(der)
    ciphertext = _expect(encrypted, _OCTET_STRING, "encrypted data").content(der)
    if len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
        raise DerError("bad AES-CBC parameters")
    key = PBKDF2HMAC(prf(), key_bytes, salt, iterations).derive(passphrase)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def as_version0(private_key_info: bytes) -> bytes:
    """Rewrite a PrivateKeyInfo's version 1 as 0 when it has no public key ([1]) to justify it."""
    top = _read(private_key_info, 0)
    items = _children(private_key_info, top)
    if not items or _int(private_key_info, items[0]) != 1:
        return private_key_info
    if any(item.tag == 0xA1 for item in items[1:]):
        return private_key_info  # a genuine v2 (OneAsymmetricKey) structure
    version = items[0]
    if version.end - version.start != 1:
        return private_key_info
    fixed = bytearray(private_key_info)
    fixed[version.start] = 0
    return bytes(fixed)
