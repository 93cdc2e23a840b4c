"""What the key store knows about a key, apart from its private half."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from securesystemslib.formats import encode_canonical

from trustkit.errors import BadInputError, KeyStoreError
from trustkit.keys._sslib import Key, SSlibKey


class KeyRole(StrEnum):
    ROOT = "root"
    TARGETS = "targets"
    SNAPSHOT = "snapshot"
    TIMESTAMP = "timestamp"
    DELEGATION = "delegation"
    SCANNER = "scanner"


KEY_NAME_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9_-]*\Z")
KEY_NAME_MAX = 64
_KEYID_PATTERN = re.compile(r"\A[0-9a-f]{64}\Z")


def check_role(role: str) -> str:
    try:
        return KeyRole(role).value
    except ValueError:
        choices = ", ".join(r.value for r in KeyRole)
        raise BadInputError(f"unknown key role {role!r} (expected one of: {choices})") from None


def check_name(name: str) -> str:
    if len(name) > KEY_NAME_MAX or not KEY_NAME_PATTERN.match(name):
        raise BadInputError(
            f"invalid key name {name!r}: use lowercase letters, digits, '_' and '-', "
            f"starting with a letter or digit (at most {KEY_NAME_MAX} characters)"
        )
    return name


def check_keyid(keyid: str) -> str:
    """Key ids become file names, so only 64 lowercase hex digits pass."""
    if not _KEYID_PATTERN.match(keyid):
        raise KeyStoreError(f"invalid key id {keyid!r}: expected 64 hex digits")
    return keyid


@dataclass(frozen=True)
class KeyRecord:
    keyid: str
    role: str
    gun: str | None
    name: str | None
    public_key: Key
    created: datetime
    #: where the private half lives when it is not an encrypted file in the store
    #: (a securesystemslib private key URI such as ``gcpkms:...`` or ``hsm:``); None = file key
    uri: str | None = None

    @property
    def keytype(self) -> str:
        return self.public_key.keytype

    @property
    def scheme(self) -> str:
        return self.public_key.scheme

    def to_json(self) -> dict[str, Any]:
        return {
            "keyid": self.keyid,
            "role": self.role,
            "gun": self.gun,
            "name": self.name,
            "keytype": self.public_key.keytype,
            "scheme": self.public_key.scheme,
            "public_key": self.public_key.to_dict(),
            "created": self.created.isoformat(),
            "uri": self.uri,
        }

    @classmethod
    def from_json(cls, data: Any) -> KeyRecord:
        """Parse a sidecar; anything malformed or inconsistent is a KeyStoreError."""
        try:
            keyid = check_keyid(str(data["keyid"]))
            public_key = SSlibKey.from_dict(keyid, dict(data["public_key"]))
            record = cls(
                keyid=keyid,
                role=check_role(str(data["role"])),
                gun=_opt_str(data.get("gun")),
                name=_opt_str(data.get("name")),
                public_key=public_key,
                created=datetime.fromisoformat(str(data["created"])),
                uri=_opt_str(data.get("uri")),
            )
        except (KeyError, TypeError, ValueError, BadInputError) as exc:
            raise KeyStoreError(f"malformed key record: {exc}") from None
        if key_id_of(public_key) != keyid:
            raise KeyStoreError(f"key record {keyid[:12]} does not match its public key")
        return record


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def key_id_of(key: Key) -> str:
    """The TUF key id: sha256 of the canonical JSON of keytype, scheme and keyval."""
    canonical = encode_canonical(
        {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval}
    )
    return hashlib.sha256(str(canonical).encode("utf-8")).hexdigest()
