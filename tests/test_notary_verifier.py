"""The Notary verifier against collections an adversary signs with keys of its choosing: a root
certificate for another GUN, delegations below their threshold, a forked root; and the shared
sample (a real notary 0.7 collection with a root rotation) walked from its first root."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from trustkit.errors import (
    BelowThresholdError,
    ForkError,
    MetadataNotFoundError,
    SignatureError,
)
from trustkit.notary.codec import canonical, format_time, key_id
from trustkit.notary.verifier import ClientCache, Verifier
from trustkit.stores.interface import MetadataReader

GUN = "registry.example/team/app"
DIGEST = hashlib.sha256(b"manifest").digest()
NOW = datetime(2026, 11, 29, tzinfo=UTC)
SAMPLE_V2_SIGNERS = ("alice",)  # bob is delegated releases too, but did not sign it
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "notary"


class DictReader(MetadataReader):
    description = "test notary server"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def exists(self, gun: str) -> bool:
        return "root" in self.files

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        name = role if version is None else f"{version}.{role}"
        if name not in self.files:
            raise MetadataNotFoundError(name)
        return self.files[name][:limit]

    def root_version(self, gun: str) -> int:
        return 1

    def generation(self, gun: str) -> str | None:
        return None


@dataclass
class Key:
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    keytype: str
    public: str

    @property
    def keyid(self) -> str:
        return key_id(self.keytype, self.public)

    def doc(self) -> dict[str, Any]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": self.public}}

    def sign(self, message: bytes) -> dict[str, str]:
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            raw, method = self.private.sign(message), "eddsa"
        else:
            r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
            raw, method = r.to_bytes(32, "big") + s.to_bytes(32, "big"), "ecdsa"
        return {"keyid": self.keyid, "method": method, "sig": base64.b64encode(raw).decode()}


def ecdsa_key() -> Key:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Key(private, "ecdsa", base64.b64encode(der).decode())


def root_key(cn: str = GUN) -> Key:
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    return Key(private, "ecdsa-x509", base64.b64encode(pem).decode())


def ed_key() -> Key:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Key(private, "ed25519", base64.b64encode(raw).decode())


def meta(data: bytes) -> dict[str, Any]:
    return {
        "hashes": {"sha256": base64.b64encode(hashlib.sha256(data).digest()).decode()},
        "length": len(data),
    }


@dataclass
class Forger:
    """Writes a whole Notary collection, as notary 0.7 lays it out, with keys it holds."""

    root: list[Key] = field(default_factory=lambda: [root_key()])
    targets: Key = field(default_factory=ecdsa_key)
    snapshot: Key = field(default_factory=ed_key)
    timestamp: Key = field(default_factory=ed_key)
    alice: Key = field(default_factory=ecdsa_key)
    bob: Key = field(default_factory=ecdsa_key)
    releases_threshold: int = 1
    releases_signers: tuple[str, ...] = ("alice",)
    version: int = 1

    def _file(self, signed: dict[str, Any], signers: list[Key]) -> bytes:
        return canonical(
            {"signed": signed, "signatures": [k.sign(canonical(signed)) for k in signers]}
        )

    def publish(self, reader: DictReader, *, releases_signed_by: list[Key] | None = None) -> None:
        expires = format_time(NOW + timedelta(days=30))
        keys = {k.keyid: k.doc() for k in [*self.root, self.targets, self.snapshot, self.timestamp]}
        root = self._file(
            {
                "_type": "Root",
                "consistent_snapshot": False,
                "expires": expires,
                "keys": keys,
                "roles": {
                    "root": {"keyids": [k.keyid for k in self.root], "threshold": 1},
                    "targets": {"keyids": [self.targets.keyid], "threshold": 1},
                    "snapshot": {"keyids": [self.snapshot.keyid], "threshold": 1},
                    "timestamp": {"keyids": [self.timestamp.keyid], "threshold": 1},
                },
                "version": self.version,
            },
            self.root,
        )
        delegates = {"alice": self.alice, "bob": self.bob}
        targets = self._file(
            {
                "_type": "Targets",
                "delegations": {
                    "keys": {self.alice.keyid: self.alice.doc(), self.bob.keyid: self.bob.doc()},
                    "roles": [
                        {
                            "keyids": [self.alice.keyid, self.bob.keyid],
                            "name": "targets/releases",
                            "paths": [""],
                            "threshold": self.releases_threshold,
                        }
                    ],
                },
                "expires": expires,
                "targets": {},
                "version": self.version,
            },
            [self.targets],
        )
        releases = self._file(
            {
                "_type": "Targets",
                "delegations": {"keys": {}, "roles": []},
                "expires": expires,
                "targets": {
                    "v1": {"hashes": {"sha256": base64.b64encode(DIGEST).decode()}, "length": 8}
                },
                "version": self.version,
            },
            releases_signed_by or [delegates[n] for n in self.releases_signers],
        )
        files = {"root": root, "targets": targets, "targets/releases": releases}
        snapshot = self._file(
            {
                "_type": "Snapshot",
                "expires": expires,
                "meta": {name: meta(data) for name, data in files.items()},
                "version": self.version,
            },
            [self.snapshot],
        )
        timestamp = self._file(
            {
                "_type": "Timestamp",
                "expires": expires,
                "meta": {"snapshot": meta(snapshot)},
                "version": self.version,
            },
            [self.timestamp],
        )
        reader.files.update(files, snapshot=snapshot, timestamp=timestamp)
        reader.files[f"{self.version}.root"] = root


def verify(reader: DictReader, cache: ClientCache | None = None) -> str:
    return Verifier(reader, GUN, cache, now=NOW).verify().find("v1").digest


def test_a_forged_collection_verifies_when_honest() -> None:
    reader = DictReader()
    Forger().publish(reader)
    assert verify(reader) == f"sha256:{DIGEST.hex()}"


def test_a_root_certificate_for_another_gun_is_refused() -> None:
    reader = DictReader()
    Forger(root=[root_key("registry.example/other/app")]).publish(reader)
    with pytest.raises(SignatureError, match=r"certificate is for 'registry\.example/other/app'"):
        verify(reader)


def test_a_delegation_below_its_threshold_is_refused() -> None:
    reader = DictReader()
    Forger(releases_threshold=2, releases_signers=("alice",)).publish(reader)
    with pytest.raises(BelowThresholdError, match="needs 2"):
        verify(reader)
    # both signers: accepted
    Forger(releases_threshold=2, releases_signers=("alice", "bob")).publish(reader)
    assert verify(reader) == f"sha256:{DIGEST.hex()}"


def test_a_delegation_signed_by_a_key_it_does_not_list_is_refused() -> None:
    """A server holding snapshot and timestamp keys (as notary-server does) re-signs them over
    releases signed by its own key: the delegation's keys do not include that key."""
    reader = DictReader()
    Forger().publish(reader, releases_signed_by=[ecdsa_key()])
    with pytest.raises(SignatureError, match="no valid signature") as refused:
        verify(reader)
    assert not isinstance(refused.value, BelowThresholdError)


def test_a_second_root_with_the_same_version_is_a_fork(tmp_path: Path) -> None:
    reader = DictReader()
    cache = ClientCache(tmp_path / "cache")
    Forger().publish(reader)
    verify(reader, cache)
    Forger().publish(reader)  # other keys, same version 1: a fresh client would accept it
    assert verify(reader) == f"sha256:{DIGEST.hex()}"
    with pytest.raises(ForkError):
        verify(reader, cache)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/samples/notary is not here")
def test_the_sample_root_rotation_walks_from_the_first_root(tmp_path: Path) -> None:
    """Notary's real rotation history: each root signed by the previous root keys and its own."""
    reader = DictReader()
    for path in sorted((SAMPLE / "root-history").glob("*.root.json")):
        reader.files[path.name.removesuffix(".json")] = path.read_bytes()
    current = SAMPLE / "current"
    for name in ("root", "timestamp", "snapshot", "targets"):
        reader.files[name] = (current / f"{name}.json").read_bytes()
    for path in (current / "targets").glob("*.json"):
        reader.files[f"targets/{path.stem}"] = path.read_bytes()
    cache = ClientCache(tmp_path / "cache")
    cache.save(reader.files["1.root"], {})
    when = datetime(2026, 11, 28, tzinfo=UTC)
    collection = Verifier(reader, "localhost:5000/library/app", cache, now=when).verify()
    assert collection.root.version == 4
    assert {t.tag for t in collection.signed_tags()} == {"v1", "v2"}
    assert collection.find("v2").signers == SAMPLE_V2_SIGNERS
