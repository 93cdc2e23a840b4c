"""trustkit reads collections the real notary CLI wrote to a real notary-server, and refuses
what an adversary in front of the server serves instead, each in one line with its kind."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.notary import (
    NotaryAdversary,
    NotaryCLI,
    NotaryServer,
    needs_notary,
)

from trustkit.cli import main
from trustkit.config import Settings
from trustkit.errors import FailureKind
from trustkit.refs import parse
from trustkit.services import Services

pytestmark = [pytest.mark.peer, needs_notary]

V1 = hashlib.sha256(b"manifest v1").hexdigest()
V2 = hashlib.sha256(b"manifest v2").hexdigest()


@dataclass(frozen=True)
class Collection:
    gun: str
    server: NotaryServer
    cli: NotaryCLI
    alice_keyid: str
    first_targets: bytes  # targets.json as served after the first tag: real, validly signed


def _keyid_of_pem(pem: Path) -> str:
    body = "".join(
        line
        for line in pem.read_text().splitlines()
        if line and not line.startswith("-----") and ":" not in line
    )
    doc = {"keytype": "ecdsa", "keyval": {"private": None, "public": body}}
    return hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


@pytest.fixture(scope="module")
def collection(notary_server: NotaryServer, tmp_path_factory: pytest.TempPathFactory) -> Collection:
    """As a DCT user's collection ends up: root rotated, snapshot managed by the server, a
    releases delegation and a named signer, a revoked tag."""
    work = tmp_path_factory.mktemp("notary-collection")
    cli = NotaryCLI(notary_server.url, work / "trust")
    gun = "localhost:5000/library/app"
    cli.run("init", "-p", gun)
    cli.run("addhash", "-p", gun, "v1", "11", "--sha256", V1)
    first_targets = urllib_get(f"{notary_server.url}/v2/{gun}/_trust/tuf/targets.json")
    cli.run("key", "generate", "ecdsa", "--role", "alice", "-o", str(work / "alice"))
    keyid = _keyid_of_pem(work / "alice.pem")
    cli.run("delegation", "add", gun, "targets/releases", str(work / "alice.pem"), "--all-paths")
    cli.run("delegation", "add", "-p", gun, "targets/alice", str(work / "alice.pem"), "--all-paths")
    with_path = work / "alice-key-path.pem"
    lines = (work / "alice-key.pem").read_text().splitlines(keepends=True)
    with_path.write_text(lines[0] + f"path: {keyid}\n" + "".join(lines[1:]))
    cli.run("key", "import", str(with_path))
    cli.run("addhash", "-p", gun, "v2", "11", "--sha256", V2, "-r", "targets/releases",
            "-r", "targets/alice")  # fmt: skip
    cli.run("addhash", "-p", gun, "gone", "11", "--sha256", V1)
    cli.run("key", "rotate", gun, "snapshot", "-r")
    cli.run("key", "rotate", gun, "root", stdin="yes\n")
    cli.run("remove", "-p", gun, "gone")
    return Collection(gun, notary_server, cli, keyid, first_targets)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


@pytest.fixture
def use_server(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def use(url: str) -> None:
        monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", url)

    return use


def test_trustkit_verifies_what_the_notary_cli_wrote(
    collection: Collection, use_server: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    use_server(collection.server.url)
    code, out, err = _run(capsys, "trust", "verify", f"{collection.gun}:v2")
    assert (code, out.strip()) == (0, f"sha256:{V2}"), err
    code, out, err = _run(capsys, "trust", "verify", f"{collection.gun}:v1")
    assert (code, out.strip()) == (0, f"sha256:{V1}"), err
    # the revoked tag is not signed any more
    code, _, err = _run(capsys, "trust", "verify", f"{collection.gun}:gone")
    assert code == 1 and "gone" in err and err.count("\n") == 1
    # the notary CLI agrees on every digest
    assert V2 in collection.cli.run("lookup", collection.gun, "v2")


def test_inspect_shows_signers_and_key_ids_as_notary(
    collection: Collection, use_server: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    use_server(collection.server.url)
    code, out, err = _run(capsys, "trust", "inspect", collection.gun)
    assert code == 0, err
    [report] = json.loads(out)
    tags = {t["SignedTag"]: t for t in report["SignedTags"]}
    assert set(tags) == {"v1", "v2"}
    assert tags["v2"]["Signers"] == ["alice"] and tags["v1"]["Signers"] == ["Repo Admin"]
    signers = {s["Name"]: [k["ID"] for k in s["Keys"]] for s in report["Signers"]}
    assert signers == {"alice": [collection.alice_keyid]}
    listed = collection.cli.run("delegation", "list", collection.gun)
    assert collection.alice_keyid in listed
    assert {"root", "snapshot", "timestamp", "targets", "targets/releases"} <= set(
        report["Expires"]
    )
    code, out, err = _run(capsys, "trust", "inspect", "--pretty", collection.gun)
    assert code == 0 and "alice" in out, err


def test_evidence_names_the_notary_source_and_signer_keys(
    collection: Collection, use_server: Callable[[str], None]
) -> None:
    use_server(collection.server.url)
    from trustkit.collections import trust_evidence

    with Services(Settings.from_env()) as services:
        evidence = trust_evidence(services, parse(f"{collection.gun}:v2"))
        assert evidence.verified and evidence.source.value == "notary"
        assert evidence.digest == f"sha256:{V2}" and evidence.size == 11
        assert evidence.keyids == frozenset({collection.alice_keyid})
        by_digest = trust_evidence(services, parse(f"{collection.gun}@sha256:{V1}"))
        assert by_digest.verified and by_digest.tags == ("v1",)


# --- an adversary in front of the server -------------------------------------------------
def _signed(body: bytes, change: Callable[[dict[str, object]], None]) -> bytes:
    doc = json.loads(body)
    change(doc["signed"])
    return json.dumps(doc).encode()


def _verify_through(
    adversary: NotaryAdversary,
    gun: str,
    capsys: pytest.CaptureFixture[str],
    use_server: Callable[[str], None],
) -> tuple[int, str]:
    use_server(adversary.url)
    code, _, err = _run(capsys, "trust", "verify", f"{gun}:v2")
    return code, err


def _kind(gun: str) -> FailureKind | None:
    from trustkit.collections import trust_evidence

    with Services(Settings.from_env()) as services:
        return trust_evidence(services, parse(f"{gun}:v2")).failure


def _one_line(err: str) -> None:
    assert err.startswith("trustkit: ") and err.count("\n") == 1 and "Traceback" not in err


def test_tampered_targets_are_refused(
    collection: Collection,
    notary_adversary: NotaryAdversary,
    capsys: pytest.CaptureFixture[str],
    use_server: Callable[[str], None],
) -> None:
    notary_adversary.overrides["/targets/releases.json"] = lambda b: b.replace(
        base64.b64encode(bytes.fromhex(V2)), base64.b64encode(bytes.fromhex(V1))
    )
    code, err = _verify_through(notary_adversary, collection.gun, capsys, use_server)
    assert code == 1
    _one_line(err)
    assert _kind(collection.gun) is FailureKind.TAMPERED


def test_rollback_and_freeze_are_refused(
    collection: Collection,
    notary_adversary: NotaryAdversary,
    capsys: pytest.CaptureFixture[str],
    use_server: Callable[[str], None],
) -> None:
    use_server(notary_adversary.url)
    code, _, err = _run(capsys, "trust", "verify", f"{collection.gun}:v2")
    assert code == 0, err  # the client now trusts the current versions
    # rollback: the server serves the first timestamp again (a real, validly signed one)
    old = urllib_get(f"{collection.server.url}/v2/{collection.gun}/_trust/tuf/1.timestamp.json")
    notary_adversary.overrides["/timestamp.json"] = old
    code, err = _verify_through(notary_adversary, collection.gun, capsys, use_server)
    assert code == 1
    _one_line(err)
    assert _kind(collection.gun) is FailureKind.ROLLED_BACK
    # freeze: the server keeps serving the same, validly signed timestamp after it expired
    notary_adversary.overrides.clear()
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(days=15)  # notary-server's timestamps last 14 days
    with Services(Settings.from_env(), clock=lambda: later) as services:
        from trustkit.collections import trust_evidence

        frozen = trust_evidence(services, parse(f"{collection.gun}:v2"))
    assert frozen.failure is FailureKind.EXPIRED and "expired" in (frozen.message or "")


def urllib_get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read()
        return data


def test_mix_and_match_is_refused(
    collection: Collection,
    notary_adversary: NotaryAdversary,
    capsys: pytest.CaptureFixture[str],
    use_server: Callable[[str], None],
) -> None:
    """Real, validly signed files of different moments: an older targets with the current
    snapshot is tampering; an older root handed to a fresh client does not sign the rest."""
    base = f"{collection.server.url}/v2/{collection.gun}/_trust/tuf"
    notary_adversary.overrides["/tuf/targets.json"] = collection.first_targets
    code, err = _verify_through(notary_adversary, collection.gun, capsys, use_server)
    assert code == 1
    _one_line(err)
    assert _kind(collection.gun) is FailureKind.TAMPERED
    notary_adversary.overrides.clear()
    # root v1 still lists the snapshot key the client held before `key rotate snapshot -r`
    notary_adversary.overrides["/tuf/root.json"] = urllib_get(f"{base}/1.root.json")
    code, err = _verify_through(notary_adversary, collection.gun, capsys, use_server)
    assert code == 1
    _one_line(err)
    assert _kind(collection.gun) is FailureKind.BAD_SIGNATURE


def test_signature_by_a_key_not_in_root_is_refused(
    collection: Collection,
    notary_adversary: NotaryAdversary,
    capsys: pytest.CaptureFixture[str],
    use_server: Callable[[str], None],
) -> None:
    # the timestamp re-signed by a key root does not list (same key id claimed)
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from trustkit.notary.codec import canonical

    intruder = ed25519.Ed25519PrivateKey.generate()

    def resign(body: bytes) -> bytes:
        doc = json.loads(body)
        doc["signed"]["version"] += 1
        sig = intruder.sign(canonical(doc["signed"]))
        doc["signatures"] = [{**doc["signatures"][0], "sig": base64.b64encode(sig).decode()}]
        return json.dumps(doc).encode()

    notary_adversary.overrides["/timestamp.json"] = resign
    code, err = _verify_through(notary_adversary, collection.gun, capsys, use_server)
    assert code == 1
    _one_line(err)
    assert _kind(collection.gun) is FailureKind.BAD_SIGNATURE


def test_oversized_responses_are_refused(
    collection: Collection,
    notary_adversary: NotaryAdversary,
    capsys: pytest.CaptureFixture[str],
    use_server: Callable[[str], None],
) -> None:
    notary_adversary.overrides["/timestamp.json"] = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    code, err = _verify_through(notary_adversary, collection.gun, capsys, use_server)
    assert code == 1 and "limit" in err
    _one_line(err)


@pytest.mark.parametrize("status", [500, None])
def test_a_server_down_or_failing_is_exit_3_naming_it(
    collection: Collection,
    notary_adversary: NotaryAdversary,
    capsys: pytest.CaptureFixture[str],
    use_server: Callable[[str], None],
    status: int | None,
) -> None:
    if status is None:
        from fixtures.notary import free_port

        url = f"http://127.0.0.1:{free_port()}"
        use_server(url)
    else:
        notary_adversary.overrides["/root.json"] = status
        url = notary_adversary.url
        use_server(url)
    code, _, err = _run(capsys, "trust", "verify", f"{collection.gun}:v2")
    assert code == 3
    _one_line(err)
    assert url.split("//")[1] in err


def test_a_registry_routed_to_a_notary_server_by_registries_json(
    collection: Collection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """registries.json's per-registry trust_server names the notary-server: only that
    registry's repositories are read from it (the rest keep the configured store)."""
    registries = tmp_path / "registries.json"
    routed = {"localhost:5000": {"trust_server": collection.server.url}}
    registries.write_text(json.dumps({"registries": routed}))
    monkeypatch.setenv("SERVIN_REGISTRIES_CONFIG", str(registries))
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", "local")
    code, out, err = _run(capsys, "trust", "verify", f"{collection.gun}:v2")
    assert (code, out.strip()) == (0, f"sha256:{V2}"), err
    code, _, err = _run(capsys, "trust", "verify", "elsewhere.example/app:v1")
    assert code == 1 and "notary" not in err, err  # not signed in the local store


def test_a_pinned_root_file_instead_of_trust_on_first_use(
    collection: Collection,
    use_server: Callable[[str], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(collection.server.url)
    first = tmp_path / "first-root.json"
    first.write_bytes(
        urllib_get(f"{collection.server.url}/v2/{collection.gun}/_trust/tuf/1.root.json")
    )
    # the first root, handed over out of band: the rotations since are walked from it
    code, out, err = _run(
        capsys, "trust", "verify", "--root-file", str(first), f"{collection.gun}:v2"
    )
    assert (code, out.strip()) == (0, f"sha256:{V2}"), err
    # a root of another collection (same GUN, other keys: the shared sample) signs nothing here
    sample = Path(__file__).resolve().parents[2] / "shared/samples/notary/root-history/1.root.json"
    if not sample.is_file():
        pytest.skip("../shared/samples/notary is not here")
    other = tmp_path / "other-root.json"
    other.write_bytes(sample.read_bytes())
    code, _, err = _run(
        capsys, "trust", "verify", "--root-file", str(other), f"{collection.gun}:v2"
    )
    assert code == 1 and err.count("\n") == 1, err
