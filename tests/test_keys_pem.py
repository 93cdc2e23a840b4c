"""Public keys, certificates and private-key import, including real Notary/DCT key files."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trustkit.errors import BadInputError, InputTooLargeError, KeyStoreError, PassphraseError
from trustkit.keys import (
    KeyRole,
    KeyStore,
    is_encrypted_pem,
    load_private_pem,
    load_public_key,
    public_key_pem,
)

DCT_PASS = "dct-sample-pass"  # notary 0.7 `key generate ecdsa --role targets/releases -o ...`


def _pkcs8(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, pw: bytes | None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(pw) if pw else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def test_certificate_yields_its_key(data_dir: Path) -> None:
    key = load_public_key((data_dir / "keys" / "bob.crt").read_bytes())
    assert key.keytype == "ecdsa"
    assert key.scheme == "ecdsa-sha2-nistp256"
    # the same key, given as a bare public key PEM, has the same id
    assert load_public_key(public_key_pem(key)).keyid == key.keyid


def test_notary_public_key_with_pem_header(data_dir: Path) -> None:
    key = load_public_key((data_dir / "keys" / "alice.pem").read_bytes())
    assert key.keytype == "ecdsa"


@pytest.mark.parametrize(
    "make", [lambda: ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate]
)
def test_public_pem_round_trip(make) -> None:  # type: ignore[no-untyped-def]
    private = make()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = load_public_key(pem)
    assert public_key_pem(key) == pem


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not PEM"),
        (b"hello", "not PEM"),
        (b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "base64"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "cannot parse"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot parse"),
        (b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n", "got FOO"),
    ],
)
def test_bad_public_input(data: bytes, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        load_public_key(data)


def test_public_rejects_private_small_rsa_and_huge() -> None:
    private = _pkcs8(ec.generate_private_key(ec.SECP256R1()), None)
    with pytest.raises(BadInputError, match="private key"):
        load_public_key(private)
    small = (
        rsa.generate_private_key(65537, 1024)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(BadInputError, match="too small"):
        load_public_key(small)
    with pytest.raises(InputTooLargeError):
        load_public_key(b"A" * (64 * 1024 + 1))


def test_import_plain_and_encrypted_pkcs8(key_store: KeyStore) -> None:
    plain_key = ec.generate_private_key(ec.SECP256R1())
    plain = key_store.import_private_pem(
        _pkcs8(plain_key, None), role=KeyRole.DELEGATION, name="plain"
    )
    assert plain.name == "plain"
    enc_key = ed25519.Ed25519PrivateKey.generate()
    pem = _pkcs8(enc_key, b"file-pass")
    assert is_encrypted_pem(pem)
    with pytest.raises(PassphraseError, match="no passphrase"):
        key_store.import_private_pem(pem, role=KeyRole.DELEGATION)
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        key_store.import_private_pem(pem, role=KeyRole.DELEGATION, pem_passphrase="nope")
    record = key_store.import_private_pem(
        pem, role=KeyRole.DELEGATION, name="enc", pem_passphrase="file-pass"
    )
    assert record.keytype == "ed25519"
    signature = key_store.signer(record.keyid).sign(b"x")
    record.public_key.verify_signature(signature, b"x")
    with pytest.raises(KeyStoreError, match="already in the key store"):
        key_store.import_private_pem(pem, role=KeyRole.DELEGATION, pem_passphrase="file-pass")


def test_import_traditional_sec1_encrypted(key_store: KeyStore) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"sec1-pass"),
    )
    assert b"Proc-Type: 4,ENCRYPTED" in pem
    with pytest.raises(PassphraseError):
        load_private_pem(pem, "bad")
    record = key_store.import_private_pem(pem, role=KeyRole.SCANNER, pem_passphrase="sec1-pass")
    assert record.role == "scanner"


def test_import_real_dct_key(key_store: KeyStore, data_dir: Path) -> None:
    """cryptography alone refuses this file (inner PKCS#8 version 1 without a public key)."""
    pem = (data_dir / "keys" / "dct-releases-key.pem").read_bytes()
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, DCT_PASS.encode())
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        load_private_pem(pem, "not-it")
    record = key_store.import_private_pem(
        pem, role=KeyRole.DELEGATION, name="releases", pem_passphrase=DCT_PASS
    )
    public = load_public_key((data_dir / "keys" / "dct-releases.pem").read_bytes())
    assert record.keyid == public.keyid
    signature = key_store.signer(record.keyid).sign(b"payload")
    public.verify_signature(signature, b"payload")


def test_import_rejects_non_keys(key_store: KeyStore, data_dir: Path) -> None:
    with pytest.raises(BadInputError, match="expected a PRIVATE KEY"):
        key_store.import_private_pem(
            (data_dir / "keys" / "bob.crt").read_bytes(), role=KeyRole.DELEGATION
        )
    garbage = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    with pytest.raises(BadInputError, match="cannot be read"):
        key_store.import_private_pem(garbage, role=KeyRole.DELEGATION)
    assert key_store.records() == []


@pytest.mark.parametrize("name", ["demo-signer", "demo-scanner"])
def test_demo_keys_match_and_use_documented_passphrase(name: str) -> None:
    folder = Path(__file__).resolve().parents[1] / "keys-example"
    private = load_private_pem((folder / f"{name}.key").read_bytes(), "trustkit-demo")
    public = load_public_key((folder / f"{name}.pub").read_bytes())
    assert public.keyid in (folder / "README.md").read_text()
    from trustkit.keys import CryptoSigner

    signature = CryptoSigner(private, public).sign(b"demo")  # type: ignore[arg-type]
    public.verify_signature(signature, b"demo")
