"""Key unlock (ADR 0012): one key derivation per passphrase, not one per key; at rest unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import trustkit.keys.store as store_module
from trustkit.config import Settings
from trustkit.errors import KeyStoreError, PassphraseError
from trustkit.keys import KeyRole, KeyStore, PassphraseSource

PAYLOAD = b"payload"


def _publish_keys(store: KeyStore) -> list[str]:
    """The three keys a publish signs with (targets, snapshot, timestamp) plus a delegation."""
    return [
        store.generate(role=role, gun="example.com/app").keyid
        for role in (KeyRole.TARGETS, KeyRole.SNAPSHOT, KeyRole.TIMESTAMP, KeyRole.DELEGATION)
    ]


def test_one_derivation_per_passphrase(key_store: KeyStore, settings: Settings) -> None:
    keyids = _publish_keys(key_store)
    root = key_store.generate(role=KeyRole.ROOT, gun="example.com/app").keyid
    fresh = KeyStore(settings)  # a new process: nothing unlocked yet
    for keyid in keyids:
        signature = fresh.signer(keyid).sign(PAYLOAD)
        fresh.get(keyid).public_key.verify_signature(signature, PAYLOAD)
    assert fresh.keks.derivations == 1  # four keys under the repository passphrase, one KDF
    fresh.signer(root)
    assert fresh.keks.derivations == 2  # the root passphrase is another KEK


def test_one_prompt_and_one_derivation_when_prompted(
    key_store: KeyStore, settings: Settings
) -> None:
    keyids = _publish_keys(key_store)
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return settings.repository_passphrase or ""

    no_env = Settings(trust_dir=settings.trust_dir, config_dir=settings.config_dir)
    fresh = KeyStore(no_env, PassphraseSource(no_env, interactive=True, prompt=prompt))
    for keyid in keyids:
        fresh.signer(keyid)
    assert len(asked) == 1
    assert fresh.keks.derivations == 1


def test_wrong_passphrase_is_refused_and_not_remembered(
    key_store: KeyStore, settings: Settings
) -> None:
    keyids = _publish_keys(key_store)
    answers = iter(["wrong passphrase!", settings.repository_passphrase or ""])
    no_env = Settings(trust_dir=settings.trust_dir, config_dir=settings.config_dir)
    fresh = KeyStore(
        no_env, PassphraseSource(no_env, interactive=True, prompt=lambda _: next(answers))
    )
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        fresh.signer(keyids[0])
    # the wrong answer and its KEK are forgotten: the next attempt asks again and opens the key
    fresh.signer(keyids[0])
    fresh.signer(keyids[1])
    assert fresh.keks.derivations == 2


def test_wrong_env_passphrase_refused_for_every_key(
    key_store: KeyStore, settings: Settings
) -> None:
    keyids = _publish_keys(key_store)
    wrong = KeyStore(settings.with_changes(repository_passphrase="not-the-passphrase"))
    for keyid in keyids:
        with pytest.raises(PassphraseError, match="wrong passphrase"):
            wrong.signer(keyid)


def _private_scalar(store: KeyStore, keyid: str) -> bytes:
    private = store.signer(keyid)._private_key  # the unlocked key, to look for it on disk
    return private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_files_stay_encrypted_at_rest(key_store: KeyStore, settings: Settings) -> None:
    keyids = _publish_keys(key_store)
    salts = set()
    for keyid in keyids:
        data = (settings.private_dir / f"{keyid}.key").read_bytes()
        der = _private_scalar(key_store, keyid)
        assert der not in data and der[-32:] not in data  # neither the PKCS#8 nor its tail
        document = json.loads(data)
        assert document["format"] == "trustkit-key/1"
        assert document["cipher"] == "aes-256-gcm"
        salts.add(document["kdf"]["salt"])
        assert (settings.private_dir / f"{keyid}.key").stat().st_mode & 0o077 == 0
    assert len(salts) == 1  # one salt per store: that is what makes one derivation enough
    salt_file = settings.private_dir / "kdf.salt"
    assert salt_file.read_text().strip() in salts
    assert salt_file.stat().st_mode & 0o077 == 0


def test_salts_differ_between_stores(tmp_path: Path, settings: Settings) -> None:
    one = KeyStore(settings)
    other_settings = settings.with_changes(trust_dir=tmp_path / "other")
    other = KeyStore(other_settings)
    a = one.generate(role=KeyRole.TARGETS, gun="g").keyid
    b = other.generate(role=KeyRole.TARGETS, gun="g").keyid
    salt_a = json.loads((settings.private_dir / f"{a}.key").read_text())["kdf"]["salt"]
    salt_b = json.loads((other_settings.private_dir / f"{b}.key").read_text())["kdf"]["salt"]
    assert salt_a != salt_b  # no table of guesses serves two stores


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda d: d["kdf"].update(iterations=1_000_000_000), KeyStoreError),  # stall every unlock
        (lambda d: d["kdf"].update(iterations=10), KeyStoreError),  # a trivially weak file
        (lambda d: d["kdf"].update(iterations=d["kdf"]["iterations"] + 1), PassphraseError),
        (lambda d: d["kdf"].update(salt="00" * 16), PassphraseError),
        (lambda d: d.update(ciphertext=d["ciphertext"][:-8] + "AAAAAAA="), PassphraseError),
        (lambda d: d.update(nonce="00" * 12), PassphraseError),
        (lambda d: d.update(cipher="aes-128-ecb"), KeyStoreError),
        (lambda d: d.update(format="other/9"), KeyStoreError),
        (lambda d: d.update(nonce="zz"), KeyStoreError),
    ],
)
def test_edited_key_files_are_refused(
    key_store: KeyStore, settings: Settings, edit: object, error: type[Exception]
) -> None:
    keyid = key_store.generate(role=KeyRole.TARGETS, gun="g").keyid
    path = settings.private_dir / f"{keyid}.key"
    document = json.loads(path.read_text())
    edit(document)  # type: ignore[operator]
    path.write_text(json.dumps(document))
    with pytest.raises(error):
        KeyStore(settings).signer(keyid)


def test_truncated_key_file_is_refused(key_store: KeyStore, settings: Settings) -> None:
    keyid = key_store.generate(role=KeyRole.TARGETS, gun="g").keyid
    path = settings.private_dir / f"{keyid}.key"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(KeyStoreError, match="not valid JSON"):
        KeyStore(settings).signer(keyid)


def test_older_pkcs12_and_pem_key_files_still_load(key_store: KeyStore, settings: Settings) -> None:
    from trustkit.keys.pem import load_private_pem

    pkcs12_key = key_store.generate(role=KeyRole.TARGETS, gun="g").keyid
    pem_key = key_store.generate(role=KeyRole.SNAPSHOT, gun="g").keyid
    passphrase = settings.repository_passphrase or ""
    for keyid, encode in (
        (pkcs12_key, lambda k: store_module._encrypt_pkcs12(k, passphrase)),
        (
            pem_key,
            lambda k: k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(passphrase.encode()),
            ),
        ),
    ):
        private = key_store.signer(keyid)._private_key
        (settings.private_dir / f"{keyid}.key").write_bytes(encode(private))
    assert load_private_pem((settings.private_dir / f"{pem_key}.key").read_bytes(), passphrase)
    fresh = KeyStore(settings)
    for keyid in (pkcs12_key, pem_key):
        signature = fresh.signer(keyid).sign(PAYLOAD)
        fresh.get(keyid).public_key.verify_signature(signature, PAYLOAD)
    wrong = KeyStore(settings.with_changes(repository_passphrase="not-the-passphrase"))
    for keyid in (pkcs12_key, pem_key):
        with pytest.raises(PassphraseError):
            wrong.signer(keyid)


def test_malformed_salt_file_is_refused(settings: Settings) -> None:
    store = KeyStore(settings)
    store.generate(role=KeyRole.TARGETS, gun="g")
    (settings.private_dir / "kdf.salt").write_text("not hex\n")
    with pytest.raises(KeyStoreError, match="malformed"):
        KeyStore(settings).generate(role=KeyRole.TARGETS, gun="g")
