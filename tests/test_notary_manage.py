"""A Notary v1 collection managed from trustkit alone: created by the first ``trust signer add``
or ``trust sign`` (as docker does), then every key rotated (root, targets, snapshot, timestamp).
After each step the real notary CLI reads the collection: a client that trusted the first root
on first use follows every rotation, and a fresh client bootstraps from the current root."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
from pathlib import Path

import pytest
from fixtures.base import run_cli
from fixtures.notary import NotaryCLI, NotaryServer, needs_notary

from trustkit.config import Settings
from trustkit.keys import KeyStore, load_public_key
from trustkit.notary.writer import notary_keyid
from trustkit.services import Services

pytestmark = [pytest.mark.peer, needs_notary]

D1 = hashlib.sha256(b"one").hexdigest()
D2 = hashlib.sha256(b"two").hexdigest()
D3 = hashlib.sha256(b"three").hexdigest()


def _served(server: NotaryServer, gun: str, role: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{server.url}/v2/{gun}/_trust/tuf/{role}.json") as got:
        doc = json.loads(got.read())
    assert isinstance(doc, dict)
    return doc


def _root_roles(server: NotaryServer, gun: str) -> dict[str, list[str]]:
    signed = _served(server, gun, "root")["signed"]
    assert isinstance(signed, dict)
    return {role: spec["keyids"] for role, spec in signed["roles"].items()}


@pytest.fixture
def on_notary(
    notary_server: NotaryServer, passphrase_env: Path, monkeypatch: pytest.MonkeyPatch
) -> NotaryServer:
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", notary_server.url)
    monkeypatch.setenv("SERVIN_SIGNATURE_FORMATS", "tuf")  # no registry for cosign .sig tags
    return notary_server


def test_signer_add_creates_a_collection_the_notary_cli_reads(
    on_notary: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gun = "localhost:5000/manage/created"
    code, _, err = run_cli(["trust", "key", "generate", "alice", "--dir", str(tmp_path)], capsys)
    assert code == 0, err
    alice_id = notary_keyid(load_public_key((tmp_path / "alice.pub").read_bytes()))
    code, _, err = run_cli(
        ["trust", "signer", "add", "--key", str(tmp_path / "alice.pub"), "alice", gun], capsys
    )
    assert code == 0, err

    # as docker initialises it: our root (a certificate naming the GUN) and targets keys, the
    # server's snapshot and timestamp keys
    root = _served(on_notary, gun, "root")["signed"]
    assert isinstance(root, dict)
    [root_id] = root["roles"]["root"]["keyids"]
    assert root["keys"][root_id]["keytype"] == "ecdsa-x509"
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(
        base64.b64decode(root["keys"][root_id]["keyval"]["public"])
    )
    assert cert.subject.rfc4514_string() == f"CN={gun}"
    with Services(Settings.from_env()) as services:
        held = {r.keyid for r in services.keys.records(gun=gun)}
        roles_held = {r.role for r in services.keys.records(gun=gun)}
    assert roles_held == {"root", "targets"} and len(held) == 2

    notary = NotaryCLI(on_notary.url, tmp_path / "notary")
    listed = notary.run("delegation", "list", gun)
    assert "targets/alice" in listed and "targets/releases" in listed and alice_id in listed

    code, _, err = run_cli(
        ["trust", "sign", f"{gun}:v1", "--digest", f"sha256:{D1}", "--size", "3"], capsys
    )
    assert code == 0, err
    assert D1 in notary.run("lookup", gun, "v1")
    assert "v1" in notary.run("list", gun)
    code, out, err = run_cli(["trust", "verify", f"{gun}:v1"], capsys)
    assert (code, out.strip()) == (0, f"sha256:{D1}"), err


def test_the_first_sign_creates_a_collection_signed_by_the_repository_key(
    on_notary: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gun = "localhost:5000/manage/first-sign"
    code, _, err = run_cli(
        ["trust", "sign", f"{gun}:v1", "--digest", f"sha256:{D1}", "--size", "3"], capsys
    )
    assert code == 0, err
    notary = NotaryCLI(on_notary.url, tmp_path / "notary")
    assert D1 in notary.run("lookup", gun, "v1")
    assert "Repo Admin" in run_cli(["trust", "inspect", f"{gun}"], capsys)[1]


def test_every_key_rotated_from_trustkit(
    on_notary: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gun = "localhost:5000/manage/rotated"
    code, _, err = run_cli(
        ["trust", "sign", f"{gun}:v1", "--digest", f"sha256:{D1}", "--size", "3"], capsys
    )
    assert code == 0, err
    # a notary client that trusts the first root (trust on first use) before any rotation
    early = NotaryCLI(on_notary.url, tmp_path / "early-notary")
    assert D1 in early.run("lookup", gun, "v1")
    before = _root_roles(on_notary, gun)

    for step, role in enumerate(["root", "targets", "snapshot", "timestamp"]):
        code, out, err = run_cli(["trust", "key", "rotate", gun, "--role", role], capsys)
        assert code == 0, f"{role}: {err}"
        after = _root_roles(on_notary, gun)
        assert after[role] != before[role], role
        assert {r: k for r, k in after.items() if r != role} == {
            r: k for r, k in before.items() if r != role
        }, f"rotating {role} changed other roles"
        if role != "root":  # printed as notary shows it (root: its certificate's plain key)
            assert after[role] == [out.strip()], role
        else:  # a new certificate naming the GUN; signed by the old root key and the new one
            from cryptography import x509

            served = _served(on_notary, gun, "root")
            signed = served["signed"]
            assert isinstance(signed, dict) and isinstance(served["signatures"], list)
            [new_root] = after["root"]
            cert = x509.load_pem_x509_certificate(
                base64.b64decode(signed["keys"][new_root]["keyval"]["public"])
            )
            assert cert.subject.rfc4514_string() == f"CN={gun}"
            assert {s["keyid"] for s in served["signatures"]} == {*before["root"], new_root}
        before = after
        tag = f"after-{role}"
        digest = hashlib.sha256(tag.encode()).hexdigest()
        code, _, err = run_cli(
            ["trust", "sign", f"{gun}:{tag}", "--digest", f"sha256:{digest}", "--size", "4"],
            capsys,
        )
        assert code == 0, f"signing after rotating {role}: {err}"
        fresh = NotaryCLI(on_notary.url, tmp_path / f"fresh-{step}")
        for client in (early, fresh):
            assert digest in client.run("lookup", gun, tag), role
            assert D1 in client.run("lookup", gun, "v1"), role
            assert tag in client.run("list", gun), role
        code, out, err = run_cli(["trust", "verify", f"{gun}:{tag}"], capsys)
        assert (code, out.strip()) == (0, f"sha256:{digest}"), err

    # the new root is signed by the old root key and the new one: a trustkit client that
    # trusted the first root verifies too (fresh trust dir, pinned first root is not needed)
    code, out, err = run_cli(["trust", "verify", f"{gun}:v1"], capsys)
    assert (code, out.strip()) == (0, f"sha256:{D1}"), err


def test_a_snapshot_key_held_here_is_rotated_here(
    on_notary: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``notary init`` without ``-r``: the client holds the snapshot key; trustkit (with that
    key imported) rotates it to a new key of its own and signs snapshots itself."""
    gun = "localhost:5000/manage/local-snapshot"
    notary = NotaryCLI(on_notary.url, tmp_path / "notary")
    notary.run("init", "-p", gun)
    notary.run("addhash", "-p", gun, "v1", "3", "--sha256", D1)
    from fixtures.notary import NOTARY_ENV

    store = KeyStore(Settings.from_env())
    for role, passphrase in [
        ("root", NOTARY_ENV["NOTARY_ROOT_PASSPHRASE"]),
        ("targets", NOTARY_ENV["NOTARY_TARGETS_PASSPHRASE"]),
        ("snapshot", NOTARY_ENV["NOTARY_SNAPSHOT_PASSPHRASE"]),
    ]:
        pem = next(
            p.read_bytes()
            for p in (notary.trust_dir / "private").glob("*.key")
            if f"role: {role}".encode() in p.read_bytes()
        )
        store.import_private_pem(
            pem, role=role, gun=None if role == "root" else gun, pem_passphrase=passphrase
        )
    old = _root_roles(on_notary, gun)["snapshot"]
    code, out, err = run_cli(["trust", "key", "rotate", gun, "--role", "snapshot"], capsys)
    assert code == 0, err
    new = _root_roles(on_notary, gun)["snapshot"]
    assert new != old and new == [out.strip()]
    assert any(notary_keyid(r.public_key) == new[0] for r in store.records(role="snapshot"))
    # the snapshot the server serves is signed by the new key: ours, not the server's
    snapshot = _served(on_notary, gun, "snapshot")
    assert [s["keyid"] for s in snapshot["signatures"]] == new  # type: ignore[index,union-attr]
    code, _, err = run_cli(
        ["trust", "sign", f"{gun}:v2", "--digest", f"sha256:{D2}", "--size", "3"], capsys
    )
    assert code == 0, err
    fresh = NotaryCLI(on_notary.url, tmp_path / "fresh")
    assert D2 in fresh.run("lookup", gun, "v2") and D2 in notary.run("lookup", gun, "v2")


def test_rotating_root_without_the_root_key_is_refused(
    on_notary: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gun = "localhost:5000/manage/not-owner"
    notary = NotaryCLI(on_notary.url, tmp_path / "notary")
    notary.run("init", "-p", gun)
    notary.run("key", "rotate", gun, "snapshot", "-r")
    before = _root_roles(on_notary, gun)
    code, _, err = run_cli(["trust", "key", "rotate", gun, "--role", "timestamp"], capsys)
    assert code != 0 and "root key" in err and "trust key load" in err
    assert _root_roles(on_notary, gun) == before
    assert D3 not in notary.run("list", gun)  # and the collection still reads


def test_a_removed_signer_cannot_sign_any_more(
    on_notary: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """alice is removed; with her key she still signs releases herself and publishes them
    straight to the server: the server refuses them, so neither trustkit nor the notary CLI
    ever sees her tag."""
    from trustkit.errors import ConflictError
    from trustkit.notary.codec import canonical
    from trustkit.notary.writer import HeldKeys, serialise
    from trustkit.stores import MetadataFile
    from trustkit.stores.notary import open_notary_store

    gun = "localhost:5000/manage/removed"
    for name in ("alice", "bob"):
        code, _, err = run_cli(["trust", "key", "generate", name, "--dir", str(tmp_path)], capsys)
        assert code == 0, err
        code, _, err = run_cli(
            ["trust", "signer", "add", "--key", str(tmp_path / f"{name}.pub"), name, gun], capsys
        )
        assert code == 0, err
    code, _, err = run_cli(
        ["trust", "sign", f"{gun}:v1", "--digest", f"sha256:{D1}", "--size", "3"], capsys
    )
    assert code == 0, err
    code, _, err = run_cli(["trust", "signer", "remove", "alice", gun], capsys)
    assert code == 0, err

    with Services(Settings.from_env()) as services:
        [record] = services.keys.records(name="alice")
    releases = _served(on_notary, gun, "targets/releases")
    signed = releases["signed"]
    assert isinstance(signed, dict)
    signed["targets"]["evil"] = {
        "hashes": {"sha256": base64.b64encode(bytes.fromhex(D3)).decode()},
        "length": 5,
    }
    signed["version"] += 1
    with Services(Settings.from_env()) as services:
        held = HeldKeys.of(services.keys)  # her key as it was in the shared key store
        alice_id = notary_keyid(record.public_key)
        forged = serialise(signed, [held.sign(alice_id, canonical(signed))])
    store = open_notary_store(on_notary.url, None)
    with pytest.raises(ConflictError, match="refused"):
        store.publish(
            gun,
            [MetadataFile("targets/releases", signed["version"], forged)],
            expected=store.generation(gun),
        )
    code, _, err = run_cli(["trust", "verify", f"{gun}:evil"], capsys)
    assert code == 1, err
    notary = NotaryCLI(on_notary.url, tmp_path / "notary")
    assert D3 not in notary.run("lookup", gun, "evil", check=False)
    code, out, err = run_cli(["trust", "verify", f"{gun}:v1"], capsys)
    assert (code, out.strip()) == (0, f"sha256:{D1}"), err
    # the control: the very same file signed by bob, still a signer, is accepted
    with Services(Settings.from_env()) as services:
        [bob] = services.keys.records(name="bob")
        by_bob = serialise(
            signed,
            [HeldKeys.of(services.keys).sign(notary_keyid(bob.public_key), canonical(signed))],
        )
    store.publish(
        gun,
        [MetadataFile("targets/releases", signed["version"], by_bob)],
        expected=store.generation(gun),
    )
    assert D3 in notary.run("lookup", gun, "evil")


def test_the_timestamp_key_is_never_moved_into_the_key_store(
    on_notary: NotaryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    gun = "localhost:5000/manage/timestamp-key"
    code, _, err = run_cli(
        ["trust", "sign", f"{gun}:v1", "--digest", f"sha256:{D1}", "--size", "3"], capsys
    )
    assert code == 0, err
    KeyStore(Settings.from_env()).generate(role="timestamp", gun=gun, name="mine")
    before = _root_roles(on_notary, gun)
    code, _, err = run_cli(
        ["trust", "key", "rotate", gun, "--role", "timestamp", "--key", "mine"], capsys
    )
    assert code == 2 and "signed by its notary-server" in err, err
    assert _root_roles(on_notary, gun) == before


def test_the_root_is_renewed_from_trustkit(
    on_notary: NotaryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gun = "localhost:5000/manage/renewed"
    code, _, err = run_cli(
        ["trust", "sign", f"{gun}:v1", "--digest", f"sha256:{D1}", "--size", "3"], capsys
    )
    assert code == 0, err
    early = NotaryCLI(on_notary.url, tmp_path / "early-notary")
    assert D1 in early.run("lookup", gun, "v1")
    first = _served(on_notary, gun, "root")["signed"]
    code, out, err = run_cli(["trust", "renew", gun, "--role", "root"], capsys)
    assert code == 0 and "root" in out, err
    renewed = _served(on_notary, gun, "root")["signed"]
    assert isinstance(first, dict) and isinstance(renewed, dict)
    assert renewed["version"] == first["version"] + 1
    assert renewed["expires"] >= first["expires"] and renewed["roles"] == first["roles"]
    fresh = NotaryCLI(on_notary.url, tmp_path / "fresh-notary")
    for client in (early, fresh):
        assert D1 in client.run("lookup", gun, "v1")
