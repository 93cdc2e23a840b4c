"""Key store: generation, encryption at rest, permissions, passphrases, signing."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

import trustkit._fs
from trustkit.config import Settings
from trustkit.errors import BadInputError, KeyStoreError, PassphraseError, StorageError
from trustkit.keys import KeyRole, KeyStore, PassphraseSource, Signature, key_id_of

PAYLOAD = b"signed tag payload"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("keytype", "scheme"), [("ecdsa", "ecdsa-sha2-nistp256"), ("ed25519", "ed25519")]
)
def test_generate_sign_verify(key_store: KeyStore, keytype: str, scheme: str) -> None:
    record = key_store.generate(role=KeyRole.TARGETS, gun="example.com/app", keytype=keytype)
    assert record.public_key.keytype == keytype
    assert record.public_key.scheme == scheme
    assert record.keyid == record.public_key.keyid == key_id_of(record.public_key)
    signature = key_store.signer(record.keyid).sign(PAYLOAD)
    assert signature.keyid == record.keyid
    record.public_key.verify_signature(signature, PAYLOAD)
    with pytest.raises(Exception, match=r"(?i)verif"):
        record.public_key.verify_signature(signature, PAYLOAD + b"x")


def test_fresh_store_decrypts_and_signs(key_store: KeyStore, settings: Settings) -> None:
    record = key_store.generate(role=KeyRole.ROOT, gun="example.com/app")
    reopened = KeyStore(settings)
    assert reopened.get(record.keyid) == record
    signature = reopened.signer(record.keyid).sign(PAYLOAD)
    record.public_key.verify_signature(signature, PAYLOAD)


def test_permissions_and_encryption_at_rest(key_store: KeyStore, settings: Settings) -> None:
    record = key_store.generate(role=KeyRole.SNAPSHOT, gun="example.com/app")
    assert _mode(settings.trust_dir) == 0o700
    assert _mode(settings.private_dir) == 0o700
    key_file = settings.private_dir / f"{record.keyid}.key"
    record_file = settings.private_dir / f"{record.keyid}.json"
    assert _mode(key_file) == 0o600
    assert _mode(record_file) == 0o600
    data = key_file.read_bytes()
    with pytest.raises(PassphraseError):  # encrypted: cannot be opened without the passphrase
        KeyStore(dataclasses.replace(settings, repository_passphrase="not it")).signer(record.keyid)
    assert json.loads(data)["format"] == "trustkit-key/1"
    sidecar = json.loads(record_file.read_text())
    assert sidecar["role"] == "snapshot"
    assert sidecar["gun"] == "example.com/app"
    assert sidecar["scheme"] == "ecdsa-sha2-nistp256"
    assert sidecar["uri"] is None
    assert "PRIVATE" not in record_file.read_text()


def test_tightens_existing_loose_directories(settings: Settings, key_store: KeyStore) -> None:
    settings.private_dir.mkdir(parents=True)
    settings.trust_dir.chmod(0o755)
    settings.private_dir.chmod(0o755)
    key_store.generate(role=KeyRole.SCANNER, name="ci")
    assert _mode(settings.trust_dir) == 0o700
    assert _mode(settings.private_dir) == 0o700


def test_failed_write_leaves_no_record(
    key_store: KeyStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the rename of the record fails; the key must not be listed."""
    real_replace = trustkit._fs.os.replace

    def failing_replace(src: str, dst: str) -> None:
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(trustkit._fs.os, "replace", failing_replace)
    with pytest.raises(StorageError, match="No space left"):
        key_store.generate(role=KeyRole.TARGETS, gun="g")
    monkeypatch.undo()
    assert KeyStore(settings).records() == []
    assert not list(settings.private_dir.glob(".*.tmp"))  # temp file cleaned up


def test_wrong_passphrase(key_store: KeyStore, settings: Settings) -> None:
    record = key_store.generate(role=KeyRole.TARGETS, gun="g")
    wrong = KeyStore(settings.with_changes(repository_passphrase="not-the-passphrase"))
    with pytest.raises(PassphraseError) as caught:
        wrong.signer(record.keyid)
    assert "wrong passphrase" in caught.value.one_line()
    assert "\n" not in caught.value.one_line()
    assert caught.value.exit_code == 2


def test_passphrase_per_role(key_store: KeyStore, settings: Settings) -> None:
    """Root keys use the root passphrase, every other role the repository passphrase."""
    root = key_store.generate(role=KeyRole.ROOT, gun="g")
    targets = key_store.generate(role=KeyRole.TARGETS, gun="g")
    scanner = key_store.generate(role=KeyRole.SCANNER, name="ci")
    bad_repo = KeyStore(settings.with_changes(repository_passphrase="wrong-wrong"))
    bad_repo.signer(root.keyid)  # root passphrase still right
    for keyid in (targets.keyid, scanner.keyid):
        with pytest.raises(PassphraseError):
            bad_repo.signer(keyid)
    bad_root = KeyStore(settings.with_changes(root_passphrase="wrong-wrong"))
    bad_root.signer(targets.keyid)
    with pytest.raises(PassphraseError):
        bad_root.signer(root.keyid)


@pytest.mark.parametrize(
    ("role", "variable"),
    [
        ("root", "SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE"),
        ("targets", "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE"),
        ("delegation", "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE"),
    ],
)
def test_no_tty_no_env_names_variable(trust_dir: Path, role: str, variable: str) -> None:
    bare = Settings(trust_dir=trust_dir)
    store = KeyStore(bare, PassphraseSource(bare, interactive=False))
    with pytest.raises(PassphraseError) as caught:
        store.generate(role=role, gun="g")
    assert variable in caught.value.one_line()
    assert not (trust_dir / "private").exists() or not list((trust_dir / "private").iterdir())


def test_empty_env_value_counts_as_unset(trust_dir: Path) -> None:
    bare = Settings(trust_dir=trust_dir, repository_passphrase="")
    with pytest.raises(PassphraseError, match="REPOSITORY_PASSPHRASE"):
        PassphraseSource(bare, interactive=False).get("targets", purpose="test")


class Prompter:
    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


def test_prompt_confirms_then_asks_once_per_store(trust_dir: Path) -> None:
    bare = Settings(trust_dir=trust_dir)
    creating = Prompter("long enough pass", "long enough pass")
    store = KeyStore(bare, PassphraseSource(bare, interactive=True, prompt=creating))
    record = store.generate(role=KeyRole.TARGETS, gun="g")
    assert len(creating.prompts) == 2  # entered and repeated

    unlocking = Prompter("long enough pass")
    store = KeyStore(bare, PassphraseSource(bare, interactive=True, prompt=unlocking))
    for _ in range(5):
        store.signer(record.keyid).sign(PAYLOAD)
    assert len(unlocking.prompts) == 1
    assert "targets key" in unlocking.prompts[0]


def test_prompt_mismatch_and_short(trust_dir: Path) -> None:
    bare = Settings(trust_dir=trust_dir)
    mismatch = PassphraseSource(bare, interactive=True, prompt=Prompter("abcdefgh1", "abcdefgh2"))
    with pytest.raises(PassphraseError, match="do not match"):
        mismatch.get("root", purpose="encrypt", confirm=True)
    short = PassphraseSource(bare, interactive=True, prompt=Prompter("abc"))
    with pytest.raises(PassphraseError, match="too short"):
        short.get("root", purpose="encrypt", confirm=True)


def test_wrong_prompted_passphrase_is_forgotten(trust_dir: Path, settings: Settings) -> None:
    record = KeyStore(settings).generate(role=KeyRole.TARGETS, gun="g")
    bare = Settings(trust_dir=trust_dir)
    prompter = Prompter("wrong-pass-1", "repo-pass-for-tests")
    store = KeyStore(bare, PassphraseSource(bare, interactive=True, prompt=prompter))
    with pytest.raises(PassphraseError):
        store.signer(record.keyid)
    store.signer(record.keyid)  # asks again instead of reusing the wrong answer
    assert len(prompter.prompts) == 2


def test_records_filters_get_remove(key_store: KeyStore) -> None:
    root = key_store.generate(role=KeyRole.ROOT, gun="a/app")
    targets_a = key_store.generate(role=KeyRole.TARGETS, gun="a/app")
    targets_b = key_store.generate(role=KeyRole.TARGETS, gun="b/app", keytype="ed25519")
    alice = key_store.generate(role=KeyRole.DELEGATION, name="alice")
    assert {r.keyid for r in key_store.records()} == {
        root.keyid,
        targets_a.keyid,
        targets_b.keyid,
        alice.keyid,
    }
    assert [r.keyid for r in key_store.records(role="targets", gun="b/app")] == [targets_b.keyid]
    assert [r.keyid for r in key_store.records(name="alice")] == [alice.keyid]
    assert key_store.records(gun="c/app") == []
    assert key_store.has_private(alice.keyid)
    key_store.remove(alice.keyid)
    assert not key_store.has_private(alice.keyid)
    with pytest.raises(KeyStoreError, match="no key"):
        key_store.get(alice.keyid)
    with pytest.raises(KeyStoreError):
        key_store.signer(alice.keyid)


def test_empty_store_and_bad_ids(key_store: KeyStore) -> None:
    assert key_store.records() == []
    with pytest.raises(KeyStoreError, match="no key"):
        key_store.get("0" * 64)
    assert not key_store.has_private("0" * 64)
    for bad in ("../../etc/passwd", "ABC", "0" * 63):
        with pytest.raises(KeyStoreError, match="invalid key id"):
            key_store.get(bad)


def test_rejects_bad_role_name_type(key_store: KeyStore) -> None:
    with pytest.raises(BadInputError, match="unknown key role"):
        key_store.generate(role="admin")
    with pytest.raises(BadInputError, match="invalid key name"):
        key_store.generate(role=KeyRole.DELEGATION, name="Alice!")
    with pytest.raises(BadInputError, match="unknown key type"):
        key_store.generate(role=KeyRole.DELEGATION, keytype="dsa")


def test_tampered_record_is_refused(key_store: KeyStore, settings: Settings) -> None:
    record = key_store.generate(role=KeyRole.TARGETS, gun="g")
    other = key_store.generate(role=KeyRole.TARGETS, gun="g")
    path = settings.private_dir / f"{record.keyid}.json"
    data = json.loads(path.read_text())
    data["public_key"] = json.loads((settings.private_dir / f"{other.keyid}.json").read_text())[
        "public_key"
    ]
    path.write_text(json.dumps(data))
    with pytest.raises(KeyStoreError, match="does not match"):
        KeyStore(settings).get(record.keyid)
    path.write_text("{not json")
    with pytest.raises(KeyStoreError, match="not valid JSON"):
        KeyStore(settings).records()


def test_swapped_private_key_is_refused(key_store: KeyStore, settings: Settings) -> None:
    one = key_store.generate(role=KeyRole.TARGETS, gun="g")
    two = key_store.generate(role=KeyRole.TARGETS, gun="g")
    key_one = settings.private_dir / f"{one.keyid}.key"
    key_one.write_bytes((settings.private_dir / f"{two.keyid}.key").read_bytes())
    with pytest.raises(KeyStoreError, match="does not match"):
        KeyStore(settings).signer(one.keyid)


def test_signature_type(key_store: KeyStore) -> None:
    record = key_store.generate(role=KeyRole.TIMESTAMP, gun="g", keytype="ed25519")
    signature = key_store.signer(record.keyid).sign(PAYLOAD)
    assert isinstance(signature, Signature)
    assert len(bytes.fromhex(signature.signature)) == 64


def test_unknown_uri_scheme_is_a_clear_error(key_store: KeyStore, settings: Settings) -> None:
    record = key_store.generate(role=KeyRole.TARGETS, gun="g")
    path = settings.private_dir / f"{record.keyid}.json"
    data = json.loads(path.read_text())
    data["uri"] = "nosuchkms:projects/x/keys/y"
    path.write_text(json.dumps(data))
    store = KeyStore(settings)
    assert store.has_private(record.keyid)
    with pytest.raises(KeyStoreError, match="cannot use key"):
        store.signer(record.keyid)


def test_generate_public_file_cleans_up_on_write_failure(
    key_store: KeyStore, tmp_path: Path
) -> None:
    from trustkit.keys import generate_public_file

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")  # the public key's folder cannot be created (works as root too)
    with pytest.raises(StorageError):
        generate_public_file(key_store, not_a_dir / "x.pub", name="x")
    assert key_store.records() == []


def test_key_files_use_a_strong_kdf(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stolen key file costs 600,000 PBKDF2-HMAC-SHA256 iterations per passphrase guess (what
    OWASP recommends): the file says so, and a key derived with fewer iterations does not open
    it (so the figure in the header is the one really used)."""
    import hashlib

    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from fixtures.base import DEFAULT_KDF_ROUNDS

    import trustkit.keys.store as store_module
    from trustkit.keys import wrap

    assert DEFAULT_KDF_ROUNDS >= 600_000
    monkeypatch.setattr(store_module, "KDF_ROUNDS", DEFAULT_KDF_ROUNDS)
    store = KeyStore(settings)
    record = store.generate(role="delegation", name="kdf")
    key_file = settings.private_dir / f"{record.keyid}.key"
    data = key_file.read_bytes()
    assert b"PRIVATE KEY" not in data  # no plaintext, no PEM of a weaker scheme
    document = json.loads(data)
    assert document["kdf"]["name"] == "pbkdf2-hmac-sha256"
    assert document["kdf"]["iterations"] == DEFAULT_KDF_ROUNDS
    assert document["cipher"] == "aes-256-gcm"
    sealed = wrap.WrappedKey.parse(data, what="test")
    secret = settings.repository_passphrase.encode()
    aad = wrap._aad(sealed.params)
    weaker = hashlib.pbkdf2_hmac("sha256", secret, sealed.params.salt, DEFAULT_KDF_ROUNDS - 1)
    with pytest.raises(InvalidTag):
        AESGCM(weaker).decrypt(sealed.nonce, sealed.sealed, aad)
    real = hashlib.pbkdf2_hmac("sha256", secret, sealed.params.salt, DEFAULT_KDF_ROUNDS)
    assert AESGCM(real).decrypt(sealed.nonce, sealed.sealed, aad)  # PKCS#8 DER inside
    assert KeyStore(settings).signer(record.keyid) is not None  # a fresh store unlocks it
