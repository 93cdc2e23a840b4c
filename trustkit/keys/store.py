"""The local key store: encrypted private keys plus a JSON record per key, under trust_dir/private.

Layout: ``<keyid>.key`` (the private key sealed with AES-256-GCM under a key-encryption key
derived from the role's passphrase with PBKDF2-HMAC-SHA256 at ``KDF_ROUNDS`` iterations and the
store's salt in ``kdf.salt``; see trustkit.keys.wrap and ADR 0012) and ``<keyid>.json`` (role,
gun, name, public key, created, uri). The record is written last, so a key is listed only once its
private half is safely on disk.

Why a shared salt: every key under one passphrase then opens with one derivation per process, so a
publish signing with three keys pays the 600,000 iterations (OWASP's figure) once, while a guess at
a stolen file still costs all of them. Key files of older stores still load: PKCS#12 (PBES2,
AES-256-CBC, PBKDF2 per file) and encrypted PKCS#8 PEM (the demo keys); they cost one KDF each.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from trustkit._fs import atomic_write, ensure_private_dir, file_lock, read_protected
from trustkit.config import Settings
from trustkit.errors import BadInputError, KeyStoreError, PassphraseError, StorageError
from trustkit.keys._sslib import CryptoSigner, Signer
from trustkit.keys.model import KeyRecord, check_keyid, check_name, check_role
from trustkit.keys.passphrase import PassphraseSource
from trustkit.keys.pem import MAX_KEY_FILE, load_private_pem, sslib_key
from trustkit.keys.wrap import (
    KdfParams,
    KekCache,
    WrappedKey,
    is_wrapped,
    new_salt,
    unlock_ahead,
    wrap,
)

if TYPE_CHECKING:
    from trustkit.keys.online import PinSource

KEY_TYPES = ("ecdsa", "ed25519")
#: PBKDF2-HMAC-SHA256 iterations protecting key files (OWASP's 2023 figure): ~0.1 s per unlock
KDF_ROUNDS = 600_000
_RECORD_SUFFIX = ".json"
_KEY_SUFFIX = ".key"
_SALT_FILE = "kdf.salt"  # hex; not *.json, which are key records


def _encrypt_pkcs12(private: PrivateKeyTypes, passphrase: str) -> bytes:
    """The format of older stores (one PBKDF2 per file); kept so tests can write such files."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import pkcs12

    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase.encode("utf-8"))
    )
    return pkcs12.serialize_key_and_certificates(
        b"trustkit",
        private,  # type: ignore[arg-type]  # ecdsa/ed25519 only (KEY_TYPES, imports checked)
        None,
        None,
        encryption,
    )


def _decrypt(data: bytes, passphrase: str, *, what: str) -> PrivateKeyTypes:
    if data.lstrip().startswith(b"-----BEGIN"):
        return load_private_pem(data, passphrase, what=what)  # PKCS#8 PEM of older stores
    from cryptography.hazmat.primitives.serialization import pkcs12

    try:
        private, _, _ = pkcs12.load_key_and_certificates(data, passphrase.encode("utf-8"))
    except ValueError:  # the MAC check fails: a wrong passphrase (or a damaged file)
        raise PassphraseError(f"wrong passphrase for {what}") from None
    if private is None:
        raise KeyStoreError(f"{what}: the key file holds no private key")
    return private


def _new_private_key(keytype: str) -> PrivateKeyTypes:
    if keytype == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if keytype == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise BadInputError(f"unknown key type {keytype!r} (expected one of: {', '.join(KEY_TYPES)})")


class KeyStore:
    def __init__(self, settings: Settings, passphrases: PassphraseSource | None = None) -> None:
        self._settings = settings
        self._dir = settings.private_dir
        self.passphrases = passphrases or PassphraseSource(settings)
        self._signers: dict[str, Signer] = {}
        self.keks = KekCache()

    @cached_property
    def pins(self) -> PinSource:
        """The HSM PIN source, for online keys only: a file key's signing does not import
        the online back-ends' module."""
        from trustkit.keys.online import PinSource

        return PinSource(self._settings.hsm_pin)

    @property
    def directory(self) -> Path:
        return self._dir

    # --- writing ----------------------------------------------------------------------------
    def generate(
        self,
        *,
        role: str,
        gun: str | None = None,
        name: str | None = None,
        keytype: str = "ecdsa",
    ) -> KeyRecord:
        """Create a key pair; the private half is encrypted with the passphrase for ``role``."""
        check_role(role)
        private = _new_private_key(keytype)
        return self._add(private, role=role, gun=gun, name=name)

    def import_private_pem(
        self,
        pem: bytes,
        *,
        role: str,
        gun: str | None = None,
        name: str | None = None,
        pem_passphrase: str | None = None,
    ) -> KeyRecord:
        """Store an existing private key (re-encrypted with the passphrase for ``role``)."""
        check_role(role)
        private = load_private_pem(pem, pem_passphrase, what="key file")
        return self._add(private, role=role, gun=gun, name=name)

    def _add(
        self, private: PrivateKeyTypes, *, role: str, gun: str | None, name: str | None
    ) -> KeyRecord:
        role = check_role(role)
        if name is not None:
            check_name(name)
        public = sslib_key(private.public_key())
        record = KeyRecord(
            keyid=public.keyid,
            role=role,
            gun=gun,
            name=name,
            public_key=public,
            created=datetime.now(UTC).replace(microsecond=0),
        )
        label = f"new {role} key {record.keyid[:7]}" + (f" ({name})" if name else "")
        passphrase = self.passphrases.get(role, purpose=f"encrypt the {label}", confirm=True)
        params = KdfParams(self._store_salt(), KDF_ROUNDS)
        encrypted = wrap(private, self.keks.kek(passphrase, params), params)
        with self._locked():
            if self._record_path(record.keyid).exists():
                raise KeyStoreError(
                    f"key {record.keyid[:12]} is already in the key store",
                    hint="remove it first to import it again",
                )
            atomic_write(self._key_path(record.keyid), encrypted)
            atomic_write(self._record_path(record.keyid), _dump(record))
        self._signers[record.keyid] = CryptoSigner(private, public)
        return record

    def import_uri(
        self, uri: str, *, role: str, gun: str | None = None, name: str | None = None
    ) -> KeyRecord:
        """Record an online key (HSM or KMS) by its securesystemslib URI; its public half is
        read through the signer, so what is recorded is what the device holds."""
        from trustkit.keys.online import import_public_key

        role = check_role(role)
        if name is not None:
            check_name(name)
        canonical_uri, public = import_public_key(uri, self.pins)
        record = KeyRecord(
            keyid=public.keyid,
            role=role,
            gun=gun,
            name=name,
            public_key=public,
            created=datetime.now(UTC).replace(microsecond=0),
            uri=canonical_uri,
        )
        with self._locked():
            if self._record_path(record.keyid).exists():
                raise KeyStoreError(
                    f"key {record.keyid[:12]} is already in the key store",
                    hint="remove it first to import it again",
                )
            atomic_write(self._record_path(record.keyid), _dump(record))
        return record

    def remove(self, keyid: str) -> None:
        self.get(keyid)
        with self._locked():
            for path in (self._record_path(keyid), self._key_path(keyid)):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise StorageError(f"cannot remove {path}: {exc.strerror}") from exc
        self._signers.pop(keyid, None)

    # --- reading ----------------------------------------------------------------------------
    def records(
        self, *, role: str | None = None, gun: str | None = None, name: str | None = None
    ) -> list[KeyRecord]:
        """Matching records, oldest first (ties by key id, so the order is stable)."""
        found = [
            record
            for record in self._all()
            if (role is None or record.role == role)
            and (gun is None or record.gun == gun)
            and (name is None or record.name == name)
        ]
        return sorted(found, key=lambda r: (r.created, r.keyid))

    def get(self, keyid: str) -> KeyRecord:
        check_keyid(keyid)
        path = self._record_path(keyid)
        if not path.is_file():
            raise KeyStoreError(f"no key {keyid[:12]} in the key store ({self._dir})")
        record = _load(path)
        if record.keyid != keyid:
            raise KeyStoreError(f"key record {path} names another key")
        return record

    def has_private(self, keyid: str) -> bool:
        if keyid in self._signers:  # unlocked here already (removal through this store drops it)
            return True
        try:
            record = self.get(keyid)
        except KeyStoreError:
            return False
        return record.uri is not None or self._key_path(keyid).is_file()

    def signer(self, keyid: str) -> Signer:
        """A Signer for ``keyid``, decrypted once per KeyStore instance."""
        cached = self._signers.get(keyid)
        if cached is not None:
            return cached
        record = self.get(keyid)
        if record.uri is not None:  # HSM/KMS keys: securesystemslib resolves the URI
            from trustkit.keys.online import ONLINE_SCHEMES, online_signer

            if record.uri.partition(":")[0] not in ONLINE_SCHEMES:
                raise KeyStoreError(
                    f"cannot use key {keyid[:12]}: its record names {record.uri[:80]!r}, "
                    "not a supported signer URI"
                )
            signer = online_signer(record.uri, record.public_key, self.pins)
        else:
            signer = self._file_signer(record)
        self._signers[keyid] = signer
        return signer

    def unlock_ahead(self, role: str) -> None:
        """Start deriving, in the background, the KEK that keys of ``role`` are wrapped under
        (``wrap.unlock_ahead``), when its passphrase is configured (never prompts)."""
        unlock_ahead(self._dir, self.passphrases.configured(role))

    def _file_signer(self, record: KeyRecord) -> Signer:
        path = self._key_path(record.keyid)
        try:
            pem = read_protected(
                path, MAX_KEY_FILE, what="private key", error=KeyStoreError, secret=True
            )
        except FileNotFoundError:
            raise KeyStoreError(
                f"the private half of key {record.keyid[:12]} is not in the key store"
            ) from None
        label = f"{record.role} key {record.keyid[:7]}" + (
            f" ({record.name})" if record.name else ""
        )
        wrapped = WrappedKey.parse(pem, what=f"the {label}") if is_wrapped(pem) else None
        passphrase = self.passphrases.get(record.role, purpose=f"unlock the {label}")
        try:
            if wrapped is not None:
                private = wrapped.unwrap(
                    self.keks.kek(passphrase, wrapped.params), what=f"the {label}"
                )
            else:
                private = _decrypt(pem, passphrase, what=f"the {label}")
        except PassphraseError:
            self.passphrases.forget(record.role)
            if wrapped is not None:
                self.keks.forget(passphrase, wrapped.params)
            raise
        try:
            return CryptoSigner(private, record.public_key)  # type: ignore[arg-type]
        except ValueError as exc:  # includes KeyMismatchError
            raise KeyStoreError(f"private key file {path} does not match its record") from exc

    # --- files ------------------------------------------------------------------------------
    def _store_salt(self) -> bytes:
        """The store's KDF salt (not secret), created with the first key written."""
        path = self._dir / _SALT_FILE
        with self._locked():
            try:
                raw = read_protected(path, 1024, what="key store salt", error=KeyStoreError)
            except FileNotFoundError:
                salt = new_salt()
                atomic_write(path, (salt.hex() + "\n").encode("ascii"))
                return salt
        try:
            salt = bytes.fromhex(raw.decode("ascii").strip())
        except (ValueError, UnicodeDecodeError):
            raise KeyStoreError(
                f"{path} is malformed", hint="remove it; keys keep their salt"
            ) from None
        if len(salt) != len(new_salt()):
            raise KeyStoreError(f"{path} is malformed", hint="remove it; keys keep their salt")
        return salt

    def _record_path(self, keyid: str) -> Path:
        return self._dir / f"{check_keyid(keyid)}{_RECORD_SUFFIX}"

    def _key_path(self, keyid: str) -> Path:
        return self._dir / f"{check_keyid(keyid)}{_KEY_SUFFIX}"

    def _all(self) -> Iterator[KeyRecord]:
        if not self._dir.is_dir():
            return
        for path in sorted(self._dir.glob(f"*{_RECORD_SUFFIX}")):
            yield _load(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        ensure_private_dir(self._settings.trust_dir)
        ensure_private_dir(self._dir)
        with file_lock(self._dir / ".lock"):
            yield


def _dump(record: KeyRecord) -> bytes:
    return (json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def _load(path: Path) -> KeyRecord:
    try:
        # the record holds the key's role: nobody else may have written it
        data = json.loads(
            read_protected(path, MAX_KEY_FILE, what="key record", error=KeyStoreError)
        )
    except FileNotFoundError:
        raise KeyStoreError(f"key record {path} disappeared") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyStoreError(f"key record {path} is not valid JSON: {exc}") from None
    return KeyRecord.from_json(data)


def generate_public_file(
    store: KeyStore,
    path: Path,
    *,
    role: str = "delegation",
    name: str | None = None,
    keytype: str = "ecdsa",
) -> KeyRecord:
    """``key generate --dir``: a new key in the store and its public half as PEM at ``path``."""
    from trustkit.keys.pem import write_public_file

    if path.exists():
        raise BadInputError(f"{path} already exists; not overwriting it")
    record = store.generate(role=role, name=name, keytype=keytype)
    try:
        write_public_file(path, record.public_key)
    except BaseException:
        store.remove(record.keyid)  # no orphan key whose public half nobody received
        raise
    return record
