"""Notary v1 wire format: parsing and signature checks over the bytes a notary-server serves.

Notary metadata is not TUF 1.0 (python-tuf cannot read it): ``_type`` is capitalised
(``Root``, ``Targets``...), there is no ``spec_version``, hashes and signatures are base64, ECDSA
signatures are raw r||s, keys are ``ecdsa`` (base64 DER SPKI), ``ecdsa-x509`` (base64 of a PEM
certificate) or ``ed25519`` (base64 of the 32 raw bytes), and delegation paths are prefixes.
Signatures are over the canonical JSON of ``signed`` (the same canonical form as
securesystemslib's), and a key id is the sha256 of the key's canonical JSON.

Everything here is pure: bytes in, parsed values or one ``UntrustedError`` out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from securesystemslib.formats import encode_canonical

from trustkit._json import decode_untrusted_json
from trustkit.errors import (
    BelowThresholdError,
    ExpiredMetadataError,
    SignatureError,
    TamperedMetadataError,
    UntrustedError,
)

ROLE_TYPES = {
    "root": "Root",
    "targets": "Targets",
    "snapshot": "Snapshot",
    "timestamp": "Timestamp",
}
#: the key types a notary client writes; anything else is refused (fail closed)
KEY_TYPES = ("ecdsa", "ecdsa-x509", "ed25519", "rsa", "rsa-x509")
MAX_KEYS = 1024
MAX_SIGNATURES = 256
MAX_DELEGATIONS = 1024
MAX_TARGETS = 1_000_000
_DELEGATION_NAME = re.compile(r"\Atargets(/[A-Za-z0-9_.\-]+)+\Z")
_TIME = re.compile(
    r"\A(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\Z", re.ASCII
)


def malformed(what: str, why: str) -> UntrustedError:
    return UntrustedError(f"{what} is not valid Notary metadata: {why}")


def canonical(value: Any) -> bytes:
    """Canonical JSON, as notary (docker/go/canonical) and securesystemslib write it."""
    encoded = encode_canonical(value)
    assert isinstance(encoded, str)
    return encoded.encode()


def b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise malformed(what, "expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise malformed(what, "not base64") from None


def parse_time(value: Any, what: str) -> datetime:
    """RFC 3339 as Go writes it (nanoseconds allowed; Python keeps microseconds)."""
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise malformed(what, f"bad expiry {value!r}")
    fraction = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    try:
        return datetime.fromisoformat(f"{match.group(1)}{fraction}{zone}").astimezone(UTC)
    except ValueError:
        raise malformed(what, f"bad expiry {value!r}") from None


def format_time(value: datetime) -> str:
    """Whole seconds: notary-server re-serialises in Go and breaks on other forms."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class NotaryKey:
    keyid: str
    keytype: str
    public: str  # as in the metadata: base64 (DER SPKI, PEM certificate or raw ed25519)
    verifier: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    certificate: x509.Certificate | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": self.public}}

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            if isinstance(self.verifier, ed25519.Ed25519PublicKey):
                self.verifier.verify(signature, message)
            elif isinstance(self.verifier, ec.EllipticCurvePublicKey):
                # raw r||s, each half the curve size (notary signs the sha256 digest)
                size = (self.verifier.curve.key_size + 7) // 8
                if len(signature) != 2 * size:
                    return False
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                self.verifier.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
            else:
                self.verifier.verify(
                    signature,
                    message,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                    hashes.SHA256(),
                )
        except (InvalidSignature, ValueError):
            return False
        return True

    def certificate_cn(self) -> str | None:
        if self.certificate is None:
            return None
        import warnings

        with warnings.catch_warnings():  # notary writes CNs over X.520's 64 characters (long GUNs)
            warnings.simplefilter("ignore", UserWarning)
            names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None


def canonical_key_id(key: NotaryKey) -> str:
    """notary's "canonical" id: a certificate key (``ecdsa-x509``) named by its plain public
    key, as ``notary key list``, ``notary delegation list`` and key file names show it."""
    if key.certificate is None:
        return key.keyid
    der = key.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key_id(key.keytype.removesuffix("-x509"), base64.b64encode(der).decode())


def key_id(keytype: str, public: str) -> str:
    return hashlib.sha256(
        canonical({"keytype": keytype, "keyval": {"private": None, "public": public}})
    ).hexdigest()


def parse_key(keyid: str, doc: Any, what: str) -> NotaryKey:
    if not isinstance(doc, dict) or not isinstance(doc.get("keyval"), dict):
        raise malformed(what, f"key {keyid[:12]} is not a key")
    keytype = doc.get("keytype")
    public = doc["keyval"].get("public")
    if keytype not in KEY_TYPES or not isinstance(public, str):
        raise malformed(what, f"key {keyid[:12]} has unsupported type {keytype!r}")
    if key_id(keytype, public) != keyid:
        raise malformed(what, f"key id {keyid[:12]} is not the hash of its key")
    raw = b64decode(public, f"{what} key {keyid[:12]}")
    certificate = None
    try:
        if keytype == "ed25519":
            verifier: Any = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        elif keytype.endswith("-x509"):
            certificate = x509.load_pem_x509_certificate(raw)
            verifier = certificate.public_key()
        else:
            verifier = serialization.load_der_public_key(raw)
    except ValueError:
        raise malformed(what, f"key {keyid[:12]} does not load") from None
    wanted = rsa.RSAPublicKey if keytype.startswith("rsa") else ec.EllipticCurvePublicKey
    if keytype != "ed25519" and not isinstance(verifier, wanted):
        raise malformed(what, f"key {keyid[:12]} is not a {keytype} key")
    return NotaryKey(keyid, keytype, public, verifier, certificate)


@dataclass(frozen=True)
class Role:
    """Who may sign a role: key ids, threshold and (delegations) path prefixes."""

    name: str
    keyids: tuple[str, ...]
    threshold: int
    paths: tuple[str, ...] = ("",)


@dataclass(frozen=True)
class MetaEntry:
    length: int
    hashes: dict[str, bytes]

    def check(self, data: bytes, what: str) -> None:
        if len(data) != self.length:
            raise TamperedMetadataError(
                f"{what} does not match the hash or length its parent signed: {len(data)} "
                f"bytes, signed {self.length}"
            )
        for name, expected in self.hashes.items():
            if hashlib.new(name, data).digest() != expected:
                raise TamperedMetadataError(
                    f"{what} does not match the hash or length its parent signed ({name})"
                )


@dataclass(frozen=True)
class Signed:
    """One parsed, not yet verified, metadata file."""

    role: str
    raw: bytes
    doc: dict[str, Any]
    signed: dict[str, Any]
    version: int
    expires: datetime
    signatures: tuple[tuple[str, bytes], ...]
    keys: dict[str, NotaryKey] = field(default_factory=dict)
    gun: str = ""  # named in messages when known

    @property
    def what(self) -> str:
        return f"{self.role} v{self.version}" + (f" of {self.gun}" if self.gun else "")


def parse(data: bytes, role: str, *, what: str, gun: str = "") -> Signed:
    """Parse one served file, checking only its shape (not its signatures)."""
    doc = decode_untrusted_json(data, what=what, error=lambda m: UntrustedError(m))
    if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
        raise malformed(what, "no 'signed' object")
    signed: dict[str, Any] = doc["signed"]
    base = "targets" if role.startswith("targets") else role
    if signed.get("_type") != ROLE_TYPES[base]:
        raise malformed(what, f"_type is {signed.get('_type')!r}, expected {ROLE_TYPES[base]!r}")
    version = signed.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise malformed(what, "bad version")
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or len(sigs) > MAX_SIGNATURES:
        raise malformed(what, "bad signatures list")
    signatures: list[tuple[str, bytes]] = []
    for sig in sigs:
        if not isinstance(sig, dict) or not isinstance(sig.get("keyid"), str):
            raise malformed(what, "bad signature entry")
        signatures.append((sig["keyid"], b64decode(sig.get("sig"), f"{what} signature")))
    keys: dict[str, NotaryKey] = {}
    key_docs = signed.get("keys") if base == "root" else _delegations(signed).get("keys", {})
    if key_docs is not None:
        if not isinstance(key_docs, dict) or len(key_docs) > MAX_KEYS:
            raise malformed(what, "bad keys")
        keys = {kid: parse_key(kid, kdoc, what) for kid, kdoc in key_docs.items()}
    return Signed(
        role=role,
        raw=data,
        doc=doc,
        signed=signed,
        version=version,
        expires=parse_time(signed.get("expires"), what),
        signatures=tuple(signatures),
        keys=keys,
        gun=gun,
    )


def _delegations(signed: Mapping[str, Any]) -> dict[str, Any]:
    value = signed.get("delegations")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UntrustedError("delegations is not an object")
    return value


def _role(name: str, doc: Any, what: str) -> Role:
    if not isinstance(doc, dict):
        raise malformed(what, f"role {name} is not an object")
    keyids = doc.get("keyids")
    threshold = doc.get("threshold")
    paths = doc.get("paths", [""])
    if not isinstance(keyids, list) or not all(isinstance(k, str) for k in keyids):
        raise malformed(what, f"role {name} has bad keyids")
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise malformed(what, f"role {name} has a bad threshold")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise malformed(what, f"role {name} has bad paths")
    return Role(name, tuple(dict.fromkeys(keyids)), threshold, tuple(paths))


def root_roles(root: Signed) -> dict[str, Role]:
    roles = root.signed.get("roles")
    if not isinstance(roles, dict):
        raise malformed(root.what, "no roles")
    found = {name: _role(name, roles.get(name), root.what) for name in ROLE_TYPES}
    return found


def delegated_roles(targets: Signed) -> list[Role]:
    """A targets file's delegations, in order (the order lookups walk them)."""
    roles = _delegations(targets.signed).get("roles", [])
    if not isinstance(roles, list) or len(roles) > MAX_DELEGATIONS:
        raise malformed(targets.what, "bad delegation roles")
    found: list[Role] = []
    for doc in roles:
        name = doc.get("name") if isinstance(doc, dict) else None
        if not isinstance(name, str) or not _DELEGATION_NAME.match(name):
            raise malformed(targets.what, f"bad delegation name {name!r}")
        if name.rpartition("/")[0] != targets.role:
            raise malformed(targets.what, f"{targets.role} cannot delegate to {name}")
        found.append(_role(name, doc, targets.what))
    return found


def meta_entries(signed: Signed) -> dict[str, MetaEntry]:
    meta = signed.signed.get("meta")
    if not isinstance(meta, dict) or len(meta) > MAX_DELEGATIONS + 4:
        raise malformed(signed.what, "bad meta")
    entries: dict[str, MetaEntry] = {}
    for name, doc in meta.items():
        entries[name] = _meta_entry(doc, f"{signed.what} meta {name}")
    return entries


def _meta_entry(doc: Any, what: str) -> MetaEntry:
    if not isinstance(doc, dict):
        raise malformed(what, "not an object")
    length = doc.get("length")
    hashes = doc.get("hashes")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise malformed(what, "bad length")
    if not isinstance(hashes, dict):
        raise malformed(what, "bad hashes")
    decoded = {n: b64decode(v, what) for n, v in hashes.items() if n in ("sha256", "sha512")}
    if not decoded:
        raise malformed(what, "no sha256 or sha512 hash")
    return MetaEntry(length, decoded)


def targets_of(targets: Signed) -> dict[str, MetaEntry]:
    """The tags a targets file records: tag -> (length, hashes)."""
    found = targets.signed.get("targets", {})
    if not isinstance(found, dict) or len(found) > MAX_TARGETS:
        raise malformed(targets.what, "bad targets")
    return {name: _meta_entry(doc, f"{targets.what} target {name}") for name, doc in found.items()}


def valid_signers(signed: Signed, role: Role, keys: Mapping[str, NotaryKey]) -> tuple[str, ...]:
    """The distinct key ids of ``role`` with a valid signature over ``signed``."""
    message = canonical(signed.signed)
    good: list[str] = []
    for keyid, sig in signed.signatures:
        key = keys.get(keyid)
        if keyid in good or keyid not in role.keyids or key is None:
            continue
        if key.verify(sig, message):
            good.append(keyid)
    return tuple(good)


def check_signatures(signed: Signed, role: Role, keys: Mapping[str, NotaryKey]) -> tuple[str, ...]:
    """Refuse ``signed`` unless ``role.threshold`` distinct keys of ``role`` signed it."""
    good = valid_signers(signed, role, keys)
    if not good:
        raise SignatureError(f"{signed.what} has no valid signature by a key {role.name} trusts")
    if len(good) < role.threshold:
        raise BelowThresholdError(
            f"{signed.what} has {len(good)} valid signature(s); {role.name} needs {role.threshold}"
        )
    return good


def check_expiry(signed: Signed, now: datetime) -> None:
    if signed.expires <= now:
        whose = f" of {signed.gun}" if signed.gun else ""
        raise ExpiredMetadataError(
            f"{signed.role} metadata{whose} (version {signed.version}) expired at "
            f"{signed.expires:%Y-%m-%d %H:%M:%S} UTC"
        )
