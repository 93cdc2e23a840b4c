"""Online keys: snapshot, timestamp and a signer's key held by a real PKCS#11 token (SoftHSM2)
and by AWS KMS (moto's server on 127.0.0.1), used through ``trust key import-uri`` and
``trust key rotate --key``; what they sign is verified by a fresh client that shares nothing but
the store; an unreachable HSM or KMS is one line and exit 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.hsm import SoftHSM
from fixtures.kms import AwsKms, free_port
from fixtures.trust import digest_for
from tuf.api.metadata import Metadata

from trustkit.cli import main
from trustkit.collections import add_signer, verify_tag
from trustkit.config import Settings
from trustkit.errors import BadInputError, PassphraseError
from trustkit.keys import KeyStore
from trustkit.keys.online import PinSource, import_public_key
from trustkit.refs import parse

REPO = "localhost:5000/online/app"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out = capsys.readouterr()
    code = caught.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


def env_settings(trust_dir: Path) -> Settings:
    """The Settings the CLI builds from the test environment (passphrase_env)."""
    return Settings.from_env()


def published(settings: Settings, role: str) -> Metadata:  # type: ignore[type-arg]
    """The newest published ``role`` metadata in the local store, as a verifier would read it."""
    gun_dir = next(p for p in settings.local_server_dir.rglob(f"*{role}.json") if p.is_file())
    newest = max(
        gun_dir.parent.glob(f"*{role}.json"),
        key=lambda p: int(p.name.split(".")[0]) if p.name[0].isdigit() else -1,
    )
    return Metadata.from_bytes(newest.read_bytes())


@pytest.fixture
def collection(passphrase_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """REPO with signer alice (a file key), created through the CLI."""
    code, _, err = run(capsys, "trust", "key", "generate", "alice", "--dir", str(tmp_path / "pub"))
    assert code == 0, err
    pub = tmp_path / "pub" / "alice.pub"
    code, _, err = run(capsys, "trust", "signer", "add", "--key", str(pub), "alice", REPO)
    assert code == 0, err
    return passphrase_env


def move_online(capsys: pytest.CaptureFixture[str], uris: dict[str, str]) -> dict[str, str]:
    """import-uri each role's URI and rotate REPO's role onto it; returns role -> key id."""
    keyids = {}
    for role, uri in uris.items():
        code, out, err = run(
            capsys, "trust", "key", "import-uri", uri, "--name", f"online-{role}", "--role", role
        )
        assert code == 0, err
        keyids[role] = out.strip()
        code, out, err = run(
            capsys, "trust", "key", "rotate", REPO, "--role", role, "--key", f"online-{role}"
        )
        assert code == 0, err
        assert out.strip() == keyids[role]
    return keyids


def sign_and_check(
    capsys: pytest.CaptureFixture[str],
    keyids: dict[str, str],
    fresh_trust_client: Callable[[str], Settings],
    tag: str,
) -> None:
    digest = digest_for(tag)
    code, _, err = run(capsys, "trust", "sign", f"{REPO}:{tag}", "--digest", digest, "--size", "7")
    assert code == 0, err
    settings = env_settings(Path())
    for role in ("snapshot", "timestamp"):
        md = published(settings, role)
        assert list(md.signatures) == [keyids[role]], f"{role} not signed by its online key"
    # another machine: an empty trust dir reading the same store verifies the tag
    client = fresh_trust_client("verifier")
    assert verify_tag(client, parse(f"{REPO}:{tag}")).digest == digest


# --- SoftHSM2 ------------------------------------------------------------------------------
def test_hsm_keys_sign_snapshot_timestamp_and_a_tag(
    softhsm: SoftHSM,
    collection: Path,
    capsys: pytest.CaptureFixture[str],
    fresh_trust_client: Callable[[str], Settings],
) -> None:
    snapshot, timestamp, signer = softhsm.new_key(), softhsm.new_key(), softhsm.new_key()
    keyids = move_online(
        capsys, {"snapshot": softhsm.uri(snapshot), "timestamp": softhsm.uri(timestamp)}
    )
    # a CI signer whose delegation key lives on the token too
    store = KeyStore(env_settings(collection))
    ci = store.import_uri(softhsm.uri(signer), role="delegation", name="ci")
    assert ci.uri == softhsm.uri(signer)
    assert not (store.directory / f"{ci.keyid}.key").exists()  # no private key file
    add_signer(env_settings(collection), parse(REPO, default_tag=False).gun, "ci",
               [ci.public_key], keystore=store)  # fmt: skip
    sign_and_check(capsys, keyids, fresh_trust_client, "v1")
    releases = published(env_settings(collection), "releases")
    assert ci.keyid in releases.signatures


def test_hsm_import_reads_the_token_and_lists_the_uri(
    softhsm: SoftHSM, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_id = softhsm.new_key()
    # one token: no label needed, the canonical URI names it
    uri, key = import_public_key(f"hsm:{key_id}", PinSource(softhsm.pin))
    assert uri == softhsm.uri(key_id) and key.scheme == "ecdsa-sha2-nistp256"
    code, out, err = run(
        capsys, "trust", "key", "import-uri", f"hsm:{key_id}", "--name", "ts", "--role", "timestamp"
    )
    assert code == 0, err
    assert out.strip() == key.keyid
    code, out, _ = run(capsys, "trust", "key", "list", "--json")
    [listed] = json.loads(out)
    assert listed["uri"] == softhsm.uri(key_id) and listed["private"] is True
    # the same name for the same role again is refused
    code, _, err = run(
        capsys, "trust", "key", "import-uri", uri, "--name", "ts", "--role", "timestamp"
    )
    assert code == 2 and "already" in err


def test_hsm_missing_key_and_wrong_pin(
    softhsm: SoftHSM, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "trust", "key", "import-uri", softhsm.uri(99), "--name", "x", "--role", "timestamp"
    )
    assert code == 2 and err.count("\n") == 1 and "hsm:99" in err  # no such key: not unreachable
    key_id = softhsm.new_key()
    store = KeyStore(Settings.from_env().with_changes(hsm_pin="0000"))
    record = store.import_uri(softhsm.uri(key_id), role="timestamp", name="ts")
    with pytest.raises(PassphraseError, match="wrong PIN"):
        store.signer(record.keyid).sign(b"payload")


def test_hsm_unreachable_is_one_line_exit_3(
    softhsm: SoftHSM,
    collection: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    move_online(capsys, {"timestamp": softhsm.uri(softhsm.new_key())})
    sign = ["trust", "sign", f"{REPO}:v2", "--digest", digest_for("v2"), "--size", "7"]
    # the token is gone: the module's configuration points at an empty token directory (in a
    # child process: this one has loaded the module with the real token already)
    empty = tmp_path / "gone"
    (empty / "tokens").mkdir(parents=True)
    conf = empty / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {empty}/tokens\nobjectstore.backend = file\n")
    done = trustkit_process(sign, SOFTHSM2_CONF=str(conf))
    assert done.returncode == 3, done.stderr
    assert one_error_line(done.stderr).startswith("trustkit: cannot reach the key at hsm:")
    # the PKCS#11 module itself is missing
    done = trustkit_process(sign, PYKCS11LIB=str(tmp_path / "no-such-module.so"))
    assert done.returncode == 3, done.stderr
    assert one_error_line(done.stderr).startswith("trustkit: cannot reach the key at hsm:")


def one_error_line(stderr: str) -> str:
    """The error, after checking it is one line (only the progress line may precede it)."""
    lines = stderr.splitlines()
    assert lines, "no error printed"
    assert all(not line.startswith("trustkit:") for line in lines[:-1]), stderr
    assert all(line.startswith("Signing and pushing") for line in lines[:-1]), stderr
    return lines[-1]


def trustkit_process(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


# --- AWS KMS (moto) ------------------------------------------------------------------------
def test_kms_keys_sign_snapshot_timestamp_and_a_tag(
    aws_kms: AwsKms,
    collection: Path,
    capsys: pytest.CaptureFixture[str],
    fresh_trust_client: Callable[[str], Settings],
) -> None:
    snapshot = aws_kms.create_key("ECC_NIST_P256")
    timestamp = aws_kms.create_key("ECC_NIST_P256", alias="trustkit-timestamp")
    keyids = move_online(
        capsys, {"snapshot": f"awskms:{snapshot}", "timestamp": "awskms:alias/trustkit-timestamp"}
    )
    store = KeyStore(env_settings(collection))
    ci = store.import_uri(f"awskms:{aws_kms.create_key('ECC_NIST_P256')}", role="delegation",
                          name="ci")  # fmt: skip
    add_signer(env_settings(collection), parse(REPO, default_tag=False).gun, "ci",
               [ci.public_key], keystore=store)  # fmt: skip
    sign_and_check(capsys, keyids, fresh_trust_client, "v1")
    assert ci.keyid in published(env_settings(collection), "releases").signatures
    assert timestamp  # the alias named this key


def test_kms_unreachable_is_one_line_exit_3(
    aws_kms: AwsKms,
    collection: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    move_online(capsys, {"timestamp": f"awskms:{aws_kms.create_key()}"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, _, err = run(capsys, "trust", "sign", f"{REPO}:v2", "--digest", digest_for("v2"),
                       "--size", "7")  # fmt: skip
    assert code == 3, err
    assert one_error_line(err).startswith("trustkit: cannot reach the key at awskms:")
    code, _, err = run(capsys, "trust", "key", "import-uri", "awskms:alias/nope", "--name", "n",
                       "--role", "snapshot")  # fmt: skip
    assert code == 3 and err.count("\n") == 1


def test_kms_key_behind_the_uri_replaced_is_refused(aws_kms: AwsKms, passphrase_env: Path) -> None:
    """An alias moved to another key: its signatures do not verify with the recorded key."""
    first, second = aws_kms.create_key(), aws_kms.create_key()
    aws_kms.client().create_alias(AliasName="alias/moving", TargetKeyId=first)
    store = KeyStore(Settings.from_env())
    record = store.import_uri("awskms:alias/moving", role="timestamp", name="ts")
    aws_kms.client().update_alias(AliasName="alias/moving", TargetKeyId=second)
    with pytest.raises(Exception, match="does not verify"):
        store.signer(record.keyid).sign(b"payload")


def test_unsupported_uris_are_refused(passphrase_env: Path) -> None:
    for uri in ("file:/etc/passwd", "pkcs11:token=x", "awskms:", "hsm:abc", "x" * 2000):
        with pytest.raises(BadInputError):
            import_public_key(uri, PinSource(None, interactive=False))


def test_hsm_pin_from_settings_prompt_or_a_clear_error() -> None:
    assert PinSource("4321")("pin") == "4321"
    asked: list[str] = []
    prompted = PinSource(None, interactive=True, prompt=lambda text: asked.append(text) or "9")
    assert prompted("pin") == "9"
    assert asked == ["Enter the pin of the HSM token: "]
    with pytest.raises(PassphraseError, match="SERVIN_HSM_PIN"):
        PinSource(None, interactive=False)("pin")
    # the environment variable reaches the key store through Settings
    assert Settings.from_env({"HOME": "/tmp", "SERVIN_HSM_PIN": "77"}).hsm_pin == "77"


@pytest.mark.registry
def test_online_keys_sign_into_the_registry_store(
    aws_kms: AwsKms, softhsm: SoftHSM, settings: Settings, registry: Any, tmp_path: Path
) -> None:
    """A CI runner holding no key file: its signer key and the timestamp key in KMS, the
    snapshot key on the HSM; the trust data in the image's own registry; a client sharing
    nothing but the registry verifies the tag and sees the KMS key vouch for it."""
    from fixtures.registry import use_registry

    from trustkit.collections import rotate_key, sign_tag, trust_evidence

    writer = settings.with_changes(
        trust_server="registry://?settle=0.05&claim_ttl=2", hsm_pin=softhsm.pin
    )
    use_registry(writer, registry)
    keys = KeyStore(writer)
    ci = keys.import_uri(f"awskms:{aws_kms.create_key()}", role="delegation", name="ci")
    gun = f"{registry.host}/online/app"
    add_signer(writer, gun, "ci", [ci.public_key], keystore=keys)
    snapshot = keys.import_uri(softhsm.uri(softhsm.new_key()), role="snapshot", name="snap")
    timestamp = keys.import_uri(f"awskms:{aws_kms.create_key()}", role="timestamp", name="ts")
    rotate_key(writer, gun, "snapshot", keystore=keys, key=snapshot)
    rotate_key(writer, gun, "timestamp", keystore=keys, key=timestamp)
    digest = digest_for("registry-v1")
    sign_tag(writer, parse(f"{gun}:v1"), digest=digest, size=10, keystore=keys)
    online = (ci, snapshot, timestamp)
    assert not any((keys.directory / f"{k.keyid}.key").exists() for k in online)
    client = writer.with_changes(trust_dir=tmp_path / "client")
    assert verify_tag(client, parse(f"{gun}:v1")).digest == digest
    evidence = trust_evidence(client, parse(f"{gun}:v1"))
    assert evidence.verified and ci.keyid in evidence.keyids
