"""Key files wrapped under one key-encryption key (KEK) per passphrase (ADR 0012).

A key file is a small JSON document: the PBKDF2-HMAC-SHA256 parameters (iterations and the key
store's salt), and the private key's PKCS#8 DER sealed with AES-256-GCM under the KEK derived from
the passphrase with those parameters. Every key in one store shares the store's salt, so the KEK
for a passphrase is derived once per process and then opens every key under that passphrase: a
publish that signs with three keys pays one KDF, not three. A guess at a stolen file still costs
the full iteration count, and salts differ between stores.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from trustkit.errors import KeyStoreError, PassphraseError, TrustkitError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

# AES-GCM and key serialization are imported where keys are sealed and opened: ``unlock_ahead``
# starts the KDF with only PBKDF2 loaded

FORMAT = "trustkit-key/1"
KDF_NAME = "pbkdf2-hmac-sha256"
CIPHER = "aes-256-gcm"
SALT_BYTES = 16
NONCE_BYTES = 12
#: a file asking for fewer rounds was not written by us (tests lower the work factor to 1,000);
#: more than the maximum would stall every unlock, so both are refused
MIN_ROUNDS = 1_000
MAX_ROUNDS = 10_000_000
_SALT_HEX = 2 * SALT_BYTES


def is_wrapped(data: bytes) -> bool:
    return data.lstrip().startswith(b"{")


@dataclass(frozen=True)
class KdfParams:
    salt: bytes
    rounds: int

    def to_json(self) -> dict[str, Any]:
        return {"name": KDF_NAME, "iterations": self.rounds, "salt": self.salt.hex()}

    @classmethod
    def from_json(cls, data: Any, *, what: str) -> KdfParams:
        if not isinstance(data, dict) or data.get("name") != KDF_NAME:
            raise KeyStoreError(f"{what}: unsupported key derivation (expected {KDF_NAME})")
        rounds, salt = data.get("iterations"), data.get("salt")
        if type(rounds) is not int or not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
            raise KeyStoreError(f"{what}: PBKDF2 iterations out of range")
        if not isinstance(salt, str) or len(salt) != _SALT_HEX:
            raise KeyStoreError(f"{what}: malformed salt")
        try:
            return cls(bytes.fromhex(salt), rounds)
        except ValueError:
            raise KeyStoreError(f"{what}: malformed salt") from None


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)  # what secrets.token_bytes returns, without its imports


class KekCache:
    """KEKs derived in this process, by (passphrase digest, salt, rounds); memory only.

    Holding a KEK is no more than holding the unlocked signers the key store already caches.
    ``derive_ahead`` starts a derivation in a background thread (the KDF releases the GIL), so a
    command that will unlock keys overlaps it with its imports and loading; ``kek`` waits for a
    derivation of the same KEK already under way instead of running a second one.
    """

    def __init__(self) -> None:
        self._keks: dict[tuple[bytes, bytes, int], bytes] = {}
        self._under_way: dict[tuple[bytes, bytes, int], threading.Thread] = {}
        self._lock = threading.Lock()
        self.derivations = 0  # how many times the KDF ran (tests and benchmarks read it)

    @staticmethod
    def _slot(secret: bytes, params: KdfParams) -> tuple[bytes, bytes, int]:
        return (hashlib.sha256(secret).digest(), params.salt, params.rounds)

    def kek(self, passphrase: str, params: KdfParams) -> bytes:
        secret = passphrase.encode("utf-8")
        slot = self._slot(secret, params)
        with self._lock:
            under_way = self._under_way.get(slot)
        if under_way is not None:
            under_way.join()
        with self._lock:
            cached = self._keks.get(slot)
        if cached is None and self is not _AHEAD:
            cached = _AHEAD.derived(slot)  # derived ahead for this process (``unlock_ahead``)
            if cached is not None:
                with self._lock:
                    self._keks[slot] = cached
        if cached is None:
            cached = self._derive(slot, secret, params)
        return cached

    def derived(self, slot: tuple[bytes, bytes, int]) -> bytes | None:
        """The KEK of ``slot`` once a derivation under way has finished, else None."""
        with self._lock:
            under_way = self._under_way.get(slot)
        if under_way is not None:
            under_way.join()
        with self._lock:
            return self._keks.get(slot)

    def derive_ahead(self, passphrase: str, params: KdfParams) -> None:
        """Start deriving the KEK of ``passphrase`` in the background (nothing when it is
        known or under way). A failure there only means ``kek`` derives it itself."""
        secret = passphrase.encode("utf-8")
        slot = self._slot(secret, params)
        with self._lock:
            if slot in self._keks or slot in self._under_way:
                return
            thread = threading.Thread(
                target=self._derive_ahead, args=(slot, secret, params), daemon=True
            )
            self._under_way[slot] = thread
        thread.start()

    def _derive_ahead(
        self, slot: tuple[bytes, bytes, int], secret: bytes, params: KdfParams
    ) -> None:
        try:
            self._derive(slot, secret, params)
        except Exception:  # noqa: S110 - kek() derives again and reports what goes wrong
            pass
        finally:
            with self._lock:
                self._under_way.pop(slot, None)

    def _derive(self, slot: tuple[bytes, bytes, int], secret: bytes, params: KdfParams) -> bytes:
        # cryptography's PBKDF2 (its bundled OpenSSL) runs about twice as fast as hashlib's
        # here, on the same standard function: a passphrase costs the attacker no less
        kdf = PBKDF2HMAC(hashes.SHA256(), 32, params.salt, params.rounds)
        derived = kdf.derive(secret)
        with self._lock:
            self.derivations += 1
            self._keks[slot] = derived
        return derived

    def forget(self, passphrase: str, params: KdfParams) -> None:
        slot = self._slot(passphrase.encode("utf-8"), params)
        with self._lock:
            under_way = self._under_way.get(slot)
        if under_way is not None:
            under_way.join()  # so a wrong passphrase's KEK is not stored after it was dropped
        with self._lock:
            self._keks.pop(slot, None)
        if self is not _AHEAD:
            _AHEAD.forget(passphrase, params)


#: KEKs derived ahead of their first use in this process (``unlock_ahead``)
_AHEAD = KekCache()
#: bound on the key file read for its KDF parameters (a key file is a few hundred bytes)
_KEY_FILE_LIMIT = 64 * 1024


def unlock_ahead(private_dir: Path, passphrase: str | None) -> None:
    """Start deriving, in the background, the KEK that ``passphrase`` gives for the keys in
    ``private_dir`` (the parameters a key file there is wrapped with), so a command about to
    sign overlaps the one KDF with loading python-tuf and the collection; every key store of
    this process then uses it (ADR 0012). Nothing without a passphrase or a wrapped key file;
    never reads more than one key file's header, never prompts."""
    if not passphrase:
        return
    from trustkit._fs import read_protected

    try:
        paths = sorted(private_dir.glob("*.key"))[:8]
    except OSError:
        return
    for path in paths:
        try:
            data = read_protected(path, _KEY_FILE_LIMIT, what="key file", secret=True)
            if is_wrapped(data):
                params = WrappedKey.parse(data, what="key file").params
                break
        except (TrustkitError, OSError):
            continue
    else:
        return
    _AHEAD.derive_ahead(passphrase, params)


def _aad(params: KdfParams) -> bytes:
    # binds the header to the ciphertext: a file whose parameters were edited does not open
    return f"{FORMAT}|{CIPHER}|{params.rounds}|{params.salt.hex()}".encode("ascii")


def wrap(private: PrivateKeyTypes, kek: bytes, params: KdfParams) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(kek).encrypt(nonce, der, _aad(params))
    document = {
        "format": FORMAT,
        "kdf": params.to_json(),
        "cipher": CIPHER,
        "nonce": nonce.hex(),
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("ascii")


@dataclass(frozen=True)
class WrappedKey:
    params: KdfParams
    nonce: bytes
    sealed: bytes

    @classmethod
    def parse(cls, data: bytes, *, what: str) -> WrappedKey:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise KeyStoreError(f"{what}: the key file is not valid JSON") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise KeyStoreError(f"{what}: unknown key file format (expected {FORMAT})")
        if document.get("cipher") != CIPHER:
            raise KeyStoreError(f"{what}: unsupported cipher (expected {CIPHER})")
        params = KdfParams.from_json(document.get("kdf"), what=what)
        nonce, sealed = document.get("nonce"), document.get("ciphertext")
        if not isinstance(nonce, str) or not isinstance(sealed, str):
            raise KeyStoreError(f"{what}: malformed key file")
        try:
            nonce_bytes = bytes.fromhex(nonce)
            sealed_bytes = base64.b64decode(sealed, validate=True)
        except (ValueError, binascii.Error):
            raise KeyStoreError(f"{what}: malformed key file") from None
        if len(nonce_bytes) != NONCE_BYTES:
            raise KeyStoreError(f"{what}: malformed nonce")
        return cls(params, nonce_bytes, sealed_bytes)

    def unwrap(self, kek: bytes, *, what: str) -> PrivateKeyTypes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            der = AESGCM(kek).decrypt(self.nonce, self.sealed, _aad(self.params))
        except InvalidTag:  # the wrong passphrase (or a damaged or edited file)
            raise PassphraseError(f"wrong passphrase for {what}") from None
        try:
            return serialization.load_der_private_key(der, None)
        except ValueError:
            raise KeyStoreError(f"{what}: the key file holds no readable private key") from None
