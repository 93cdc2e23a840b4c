"""Co-signing a releases threshold across key stores (two trust dirs = two machines).

Alice created the collection (she holds root, targets, snapshot and timestamp keys); bob is a
second releases signer on another machine; the releases threshold is 2. Both share one
``file://`` store; a third, empty trust dir verifies as a fresh client would.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures.registry import BuiltImage, Registry
from fixtures.trust import TrustedRepo, digest_for

from trustkit.cli import cli, main
from trustkit.collections import (
    add_signer,
    revoke_or_propose,
    sign_or_propose,
    sign_tag,
    verify_tag,
)
from trustkit.collections.cosigning import (
    PENDING_MAX_BYTES,
    Approval,
    StalePendingError,
    approve,
    discard,
    list_pending,
)
from trustkit.config import Settings
from trustkit.errors import (
    BadInputError,
    KeyStoreError,
    NotSignedError,
    SignatureError,
    UntrustedError,
)
from trustkit.keys import KeyStore
from trustkit.refs import parse_repository
from trustkit.stores import escape_gun


@dataclass
class Machine:
    settings: Settings
    keys: KeyStore


@dataclass
class TwoSigners:
    repo: TrustedRepo
    alice: Machine
    bob: Machine
    client: Callable[[str], Settings]

    def pending_dir(self) -> Path:
        return self.alice.settings.local_server_dir / escape_gun(self.repo.gun) / "pending"


def _copy_keys(src: KeyStore, dst: KeyStore, keyids: list[str]) -> None:
    """Hand keys to another machine as an operator would: copy the encrypted files."""
    dst.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for keyid in keyids:
        for suffix in (".key", ".json"):
            shutil.copy2(src.directory / f"{keyid}{suffix}", dst.directory / f"{keyid}{suffix}")


def _role_keyids(keys: KeyStore, role: str, gun: str | None = None) -> list[str]:
    return [r.keyid for r in keys.records(role=role, gun=gun)]


@pytest.fixture
def two(
    trusted_repo: TrustedRepo,
    settings: Settings,
    tmp_path: Path,
    fresh_trust_client: Callable[[str], Settings],
) -> TwoSigners:
    bob_settings = settings.with_changes(
        trust_dir=tmp_path / "bob", trust_server=f"file://{settings.local_server_dir}"
    )
    bob_keys = KeyStore(bob_settings)
    bob = bob_keys.generate(role="delegation", name="bob")
    add_signer(
        settings,
        trusted_repo.gun,
        "bob",
        [bob.public_key],
        threshold=2,
        keystore=trusted_repo.keystore,
    )
    return TwoSigners(
        trusted_repo,
        Machine(settings, trusted_repo.keystore),
        Machine(bob_settings, bob_keys),
        fresh_trust_client,
    )


def _propose_v1(two: TwoSigners, tag: str = "v1") -> str:
    outcome = sign_or_propose(
        two.alice.settings,
        two.repo.tag(tag),
        digest=digest_for(tag),
        size=10,
        keystore=two.alice.keys,
    )
    assert not outcome.published and outcome.pending is not None
    return outcome.pending.id


def _give_bob_publishing_keys(two: TwoSigners) -> None:
    gun = two.repo.gun
    ids = _role_keyids(two.alice.keys, "snapshot", gun) + _role_keyids(
        two.alice.keys, "timestamp", gun
    )
    _copy_keys(two.alice.keys, two.bob.keys, ids)


def test_alice_proposes_bob_approves_and_publishes(two: TwoSigners) -> None:
    outcome = sign_or_propose(
        two.alice.settings,
        two.repo.tag("v1"),
        digest=digest_for("v1"),
        size=10,
        keystore=two.alice.keys,
    )
    view = outcome.pending
    assert view is not None and not view.ready
    releases = view.roles[0]
    assert (releases.role, releases.signatures, releases.threshold) == ("targets/releases", 1, 2)
    assert releases.signers == ("alice",)
    assert view.proposer == ("alice",)
    assert [(c.tag, c.kind, c.after) for c in view.changes] == [("v1", "add", digest_for("v1"))]
    # nothing published: a fresh client does not trust the tag
    with pytest.raises(NotSignedError):
        verify_tag(two.client("fresh-before"), two.repo.tag("v1"))
    # the pending file is shared data, not secret; written atomically as one json document
    files = list(two.pending_dir().iterdir())
    assert [f.name for f in files] == [f"{view.id}.json"]

    _give_bob_publishing_keys(two)
    listed = list_pending(two.bob.settings, two.repo.gun)
    assert [v.id for v in listed] == [view.id] and listed[0].problem is None
    approval = approve(two.bob.settings, two.repo.gun, view.id, keystore=two.bob.keys)
    assert approval.published
    assert set(approval.signed_roles) == {"targets/releases", "targets/bob"}
    assert list(two.pending_dir().iterdir()) == []

    trusted = verify_tag(two.client("fresh-after"), two.repo.tag("v1"))
    assert trusted.digest == digest_for("v1")
    assert trusted.role == "targets/releases"
    assert trusted.signers == ("alice", "bob")


def test_bob_without_snapshot_key_completes_alice_publishes(two: TwoSigners) -> None:
    pid = _propose_v1(two)
    approval = approve(two.bob.settings, two.repo.gun, pid, keystore=two.bob.keys)
    assert not approval.published and approval.needs_publisher and approval.view.ready
    with pytest.raises(NotSignedError):
        verify_tag(two.client("c1"), two.repo.tag("v1"))
    [listed] = list_pending(two.alice.settings, two.repo.gun)
    assert listed.ready
    # alice adds nothing new but holds snapshot and timestamp keys: she publishes
    approval = approve(two.alice.settings, two.repo.gun, pid, keystore=two.alice.keys)
    assert approval.published and approval.signed_roles == []
    assert verify_tag(two.client("c2"), two.repo.tag("v1")).signers == ("alice", "bob")


def test_proposer_cannot_approve_alone(two: TwoSigners) -> None:
    pid = _propose_v1(two)
    with pytest.raises(BadInputError, match=r"already signed .* needs signatures from other"):
        approve(two.alice.settings, two.repo.gun, pid, keystore=two.alice.keys)


def test_stale_pending_refused_after_another_publish(two: TwoSigners) -> None:
    _give_bob_publishing_keys(two)
    first = _propose_v1(two, "v1")
    second = _propose_v1(two, "v2")
    assert approve(two.bob.settings, two.repo.gun, first, keystore=two.bob.keys).published
    with pytest.raises(StalePendingError, match=r"stale: targets/.* was published meanwhile"):
        approve(two.bob.settings, two.repo.gun, second, keystore=two.bob.keys)
    [listed] = list_pending(two.alice.settings, two.repo.gun)
    assert listed.id == second and listed.problem and "stale" in listed.problem
    # rebuilding: sign again on top of the new versions, then bob approves that one
    third = _propose_v1(two, "v2")
    assert approve(two.bob.settings, two.repo.gun, third, keystore=two.bob.keys).published
    assert verify_tag(two.client("c"), two.repo.tag("v2")).digest == digest_for("v2")


def test_signer_change_makes_pending_stale(two: TwoSigners) -> None:
    pid = _propose_v1(two)
    carol = two.alice.keys.generate(role="delegation", name="carol")
    add_signer(
        two.alice.settings, two.repo.gun, "carol", [carol.public_key], keystore=two.alice.keys
    )
    with pytest.raises(StalePendingError, match=r"signers .* changed"):
        approve(two.bob.settings, two.repo.gun, pid, keystore=two.bob.keys)


def _edit_pending(two: TwoSigners, pid: str, edit: Callable[[dict[str, object]], None]) -> None:
    path = two.pending_dir() / f"{pid}.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_tampered_digest_refused(two: TwoSigners) -> None:
    pid = _propose_v1(two)
    evil = digest_for("evil").split(":")[1]

    def swap_digest(doc: dict[str, object]) -> None:
        roles = doc["roles"]
        assert isinstance(roles, dict)
        roles["targets/releases"]["signed"]["targets"]["v1"]["hashes"]["sha256"] = evil

    _edit_pending(two, pid, swap_digest)
    with pytest.raises(SignatureError, match="does not verify: the change was altered"):
        approve(two.bob.settings, two.repo.gun, pid, keystore=two.bob.keys)
    [listed] = list_pending(two.bob.settings, two.repo.gun)
    assert listed.problem is not None and "altered" in listed.problem
    with pytest.raises(NotSignedError):
        verify_tag(two.client("c"), two.repo.tag("v1"))


def test_foreign_signature_and_raised_version_refused(two: TwoSigners) -> None:
    pid = _propose_v1(two)

    def foreign_key(doc: dict[str, object]) -> None:
        roles = doc["roles"]
        assert isinstance(roles, dict)
        sigs = roles["targets/releases"]["signatures"]
        sigs.append({"keyid": "ab" * 32, "sig": "00"})

    _edit_pending(two, pid, foreign_key)
    with pytest.raises(SignatureError, match="not a key of targets/releases"):
        approve(two.bob.settings, two.repo.gun, pid, keystore=two.bob.keys)

    pid2 = _propose_v1(two, "v2")

    def skip_version(doc: dict[str, object]) -> None:
        base = doc["base"]
        assert isinstance(base, dict)
        base["roles"]["targets/releases"] += 5

    _edit_pending(two, pid2, skip_version)
    with pytest.raises(StalePendingError):
        approve(two.bob.settings, two.repo.gun, pid2, keystore=two.bob.keys)


@pytest.mark.parametrize(
    "content",
    [b"not json", b"{}", b'{"type":"trustkit/pending-change","format":1}', b"[" * 100_000],
)
def test_malformed_pending_refused(two: TwoSigners, content: bytes) -> None:
    pid = _propose_v1(two)
    (two.pending_dir() / f"{pid}.json").write_bytes(content)
    with pytest.raises(UntrustedError, match="malformed"):
        approve(two.bob.settings, two.repo.gun, pid, keystore=two.bob.keys)


def test_oversized_pending_refused(two: TwoSigners) -> None:
    pid = _propose_v1(two)
    (two.pending_dir() / f"{pid}.json").write_bytes(b" " * (PENDING_MAX_BYTES + 1))
    with pytest.raises(BadInputError, match=r"too large|larger|exceeds"):
        approve(two.bob.settings, two.repo.gun, pid, keystore=two.bob.keys)


def test_non_signer_approve_refused(two: TwoSigners, settings: Settings, tmp_path: Path) -> None:
    pid = _propose_v1(two)
    mallory_settings = settings.with_changes(
        trust_dir=tmp_path / "mallory", trust_server=f"file://{settings.local_server_dir}"
    )
    mallory_keys = KeyStore(mallory_settings)
    mallory_keys.generate(role="delegation", name="mallory")
    with pytest.raises(KeyStoreError, match="not a signer of targets/releases"):
        approve(mallory_settings, two.repo.gun, pid, keystore=mallory_keys)
    [listed] = list_pending(two.alice.settings, two.repo.gun)
    assert listed.roles[0].signatures == 1  # nothing added


def test_discard_and_unknown_ids(two: TwoSigners) -> None:
    pid = _propose_v1(two)
    discard(two.bob.settings, two.repo.gun, pid)
    assert list_pending(two.alice.settings, two.repo.gun) == []
    with pytest.raises(BadInputError, match="no pending change"):
        discard(two.bob.settings, two.repo.gun, pid)
    with pytest.raises(BadInputError, match="no pending change"):
        approve(two.bob.settings, two.repo.gun, pid, keystore=two.bob.keys)
    with pytest.raises(BadInputError, match="invalid pending change id"):
        approve(two.bob.settings, two.repo.gun, "../../etc", keystore=two.bob.keys)


def test_revoke_needs_cosigning_too(two: TwoSigners) -> None:
    _give_bob_publishing_keys(two)
    pid = _propose_v1(two)
    approve(two.bob.settings, two.repo.gun, pid, keystore=two.bob.keys)
    outcome = revoke_or_propose(two.bob.settings, two.repo.tag("v1"), keystore=two.bob.keys)
    assert outcome.pending is not None
    assert [(c.tag, c.kind) for c in outcome.pending.changes] == [("v1", "remove")]
    # still trusted until alice co-signs the revocation
    assert verify_tag(two.client("c1"), two.repo.tag("v1")).digest == digest_for("v1")
    approval = approve(
        two.alice.settings, two.repo.gun, outcome.pending.id, keystore=two.alice.keys
    )
    assert approval.published
    with pytest.raises(NotSignedError):
        verify_tag(two.client("c2"), two.repo.tag("v1"))


def test_single_machine_path_unchanged(two: TwoSigners) -> None:
    # with both releases keys in one key store the change publishes at once, no pending entry
    _copy_keys(two.bob.keys, two.alice.keys, _role_keyids(two.bob.keys, "delegation"))
    outcome = sign_or_propose(
        two.alice.settings,
        two.repo.tag("v1"),
        digest=digest_for("v1"),
        size=1,
        keystore=two.alice.keys,
    )
    assert outcome.published and outcome.pending is None
    assert not two.pending_dir().exists() or list(two.pending_dir().iterdir()) == []
    assert verify_tag(two.client("c"), two.repo.tag("v1")).signers == ("alice", "bob")
    # the plain library call still refuses rather than leaving a pending change
    with pytest.raises(KeyStoreError, match="needs 2 of its keys and 1"):
        sign_tag(
            two.bob.settings,
            two.repo.tag("v2"),
            digest=digest_for("v2"),
            size=1,
            keystore=two.bob.keys,
        )


# --- CLI: two trust dirs sharing one file:// store ------------------------------------------
CLI_REPO = "localhost:5000/cosign/app"


@dataclass
class CliMachines:
    alice: list[str]  # global options selecting alice's trust dir
    bob: list[str]
    client: list[str]
    pending_dir: Path


def _run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _exit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out = capsys.readouterr()
    code = caught.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


@pytest.fixture
def cli_two(passphrase_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliMachines:
    server = tmp_path / "server"
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", f"file://{server}")
    alice = ["--trust-dir", str(tmp_path / "alice")]
    bob = ["--trust-dir", str(tmp_path / "bob")]
    keys = tmp_path / "pub"
    for who, name in ((alice, "alice"), (bob, "bob")):
        assert _run(*who, "trust", "key", "generate", name, "--dir", str(keys)).exit_code == 0
    for name, extra in (("alice", []), ("bob", ["--threshold", "2"])):
        result = _run(
            *alice,
            "trust",
            "signer",
            "add",
            "--key",
            str(keys / f"{name}.pub"),
            *extra,
            name,
            CLI_REPO,
        )
        assert result.exit_code == 0, result.output
    return CliMachines(
        alice,
        bob,
        ["--trust-dir", str(tmp_path / "client")],
        server / escape_gun(parse_repository(CLI_REPO).gun) / "pending",
    )


def _cli_propose(m: CliMachines, tag: str = "v1") -> str:
    result = _run(
        *m.alice, "trust", "sign", f"{CLI_REPO}:{tag}", "--digest", digest_for(tag), "--size", "7"
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"pending change ([0-9a-f]+)", result.output)
    assert match, result.output
    assert "Signed 1 of 2 required signatures for targets/releases" in result.output
    assert f"trustkit trust approve {CLI_REPO} {match.group(1)}" in result.output
    return match.group(1)


def test_cli_sign_pending_approve_publish(
    cli_two: CliMachines, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _cli_propose(cli_two)
    code, _, err = _exit(capsys, *cli_two.client, "trust", "verify", f"{CLI_REPO}:v1")
    assert code == 1 and "not signed" in err

    listed = _run(*cli_two.bob, "trust", "pending", CLI_REPO)
    assert listed.exit_code == 0
    assert pid in listed.output and "targets/releases 1/2" in listed.output
    assert f"+v1 {digest_for('v1')}" in listed.output and "waiting" in listed.output
    as_json = json.loads(_run(*cli_two.bob, "trust", "pending", "--json", CLI_REPO).output)
    assert as_json[0]["ID"] == pid and as_json[0]["Proposer"] == ["alice"]
    assert as_json[0]["Roles"][0] == {
        "Role": "targets/releases",
        "Signatures": 1,
        "Threshold": 2,
        "Signers": ["alice"],
    }
    assert as_json[0]["Changes"] == [
        {"Tag": "v1", "Change": "add", "Before": None, "After": digest_for("v1")}
    ]

    # bob signs; his key store lacks snapshot/timestamp keys, so alice's approve publishes
    code, out, err = _exit(capsys, *cli_two.bob, "trust", "approve", CLI_REPO, pid)
    assert code == 0 and "has every required signature" in out
    assert f"sign v1 {digest_for('v1')}" in err and "proposed by alice" in err
    code, out, _ = _exit(capsys, *cli_two.alice, "trust", "approve", CLI_REPO, pid)
    assert code == 0 and f"Published pending change {pid}" in out
    code, out, _ = _exit(capsys, *cli_two.client, "trust", "verify", f"{CLI_REPO}:v1")
    assert code == 0 and out.strip() == digest_for("v1")
    report = json.loads(_run(*cli_two.client, "trust", "inspect", CLI_REPO).output)
    assert report[0]["SignedTags"][0]["Signers"] == ["alice", "bob"]
    assert "No pending changes" in _run(*cli_two.alice, "trust", "pending", CLI_REPO).output


def test_cli_exit_codes(
    cli_two: CliMachines, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pid = _cli_propose(cli_two)
    # 2: the proposer approving alone, a non-signer, unknown or malformed ids
    code, _, err = _exit(capsys, *cli_two.alice, "trust", "approve", CLI_REPO, pid)
    assert code == 2 and "already signed" in err
    stranger = ["--trust-dir", str(tmp_path / "stranger")]
    code, _, err = _exit(capsys, *stranger, "trust", "approve", CLI_REPO, pid)
    assert code == 2 and "not a signer of targets/releases" in err
    code, _, err = _exit(capsys, *cli_two.bob, "trust", "approve", CLI_REPO, "0123456789ab")
    assert code == 2 and "no pending change" in err
    code, _, err = _exit(capsys, *cli_two.bob, "trust", "approve", CLI_REPO, "../x")
    assert code == 2 and "invalid pending change id" in err
    code, _, err = _exit(capsys, *cli_two.bob, "trust", "pending", "localhost:5000/none")
    assert code == 2

    # 1: stale after another publish (a second change, approved first)
    other = _cli_propose(cli_two, "v2")
    assert _exit(capsys, *cli_two.bob, "trust", "approve", CLI_REPO, other)[0] == 0
    assert _exit(capsys, *cli_two.alice, "trust", "approve", CLI_REPO, other)[0] == 0
    code, _, err = _exit(capsys, *cli_two.bob, "trust", "approve", CLI_REPO, pid)
    assert code == 1 and "stale" in err and "sign" in err
    listed = _run(*cli_two.bob, "trust", "pending", CLI_REPO).output
    assert "refused" in listed and "stale" in listed

    # discard, then 3: a pending area that cannot be read
    code, out, _ = _exit(capsys, *cli_two.bob, "trust", "pending", CLI_REPO, "--discard", pid)
    assert code == 0 and f"Discarded pending change {pid}" in out
    assert _exit(capsys, *cli_two.bob, "trust", "pending", CLI_REPO, "--discard", pid)[0] == 2
    shutil.rmtree(cli_two.pending_dir)
    cli_two.pending_dir.write_text("not a directory")
    code, _, err = _exit(capsys, *cli_two.bob, "trust", "pending", CLI_REPO)
    assert code == 3 and "pending" in err


def test_cli_tampered_pending_refused(
    cli_two: CliMachines, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = _cli_propose(cli_two)
    path = cli_two.pending_dir / f"{pid}.json"
    path.write_text(path.read_text().replace(digest_for("v1")[7:], digest_for("evil")[7:]))
    code, _, err = _exit(capsys, *cli_two.bob, "trust", "approve", CLI_REPO, pid)
    assert code == 1 and "does not verify" in err
    code, _, _ = _exit(capsys, *cli_two.client, "trust", "verify", f"{CLI_REPO}:v1")
    assert code == 1


def test_cli_revoke_pending(cli_two: CliMachines, capsys: pytest.CaptureFixture[str]) -> None:
    pid = _cli_propose(cli_two)
    assert _exit(capsys, *cli_two.bob, "trust", "approve", CLI_REPO, pid)[0] == 0
    assert _exit(capsys, *cli_two.alice, "trust", "approve", CLI_REPO, pid)[0] == 0
    result = _run(*cli_two.alice, "trust", "revoke", f"{CLI_REPO}:v1")
    assert result.exit_code == 0 and "pending change" in result.output
    assert "Successfully revoked" not in result.output
    code, out, _ = _exit(capsys, *cli_two.client, "trust", "verify", f"{CLI_REPO}:v1")
    # still trusted until bob co-signs the revocation
    assert code == 0 and out.strip() == digest_for("v1")


def test_racing_approvals_publish_once(two: TwoSigners, settings: Settings, tmp_path: Path) -> None:
    """Bob and carol approve the same change at once: the writer lock serialises them, one
    publishes, the other finds the change gone (never a double publish or a lost signature)."""
    import threading

    carol_settings = settings.with_changes(
        trust_dir=tmp_path / "carol", trust_server=f"file://{settings.local_server_dir}"
    )
    carol_keys = KeyStore(carol_settings)
    carol = carol_keys.generate(role="delegation", name="carol")
    add_signer(
        two.alice.settings, two.repo.gun, "carol", [carol.public_key], keystore=two.alice.keys
    )
    _give_bob_publishing_keys(two)
    gun = two.repo.gun
    _copy_keys(
        two.alice.keys,
        carol_keys,
        _role_keyids(two.alice.keys, "snapshot", gun)
        + _role_keyids(two.alice.keys, "timestamp", gun),
    )
    pid = _propose_v1(two)
    outcomes: list[object] = []
    start = threading.Barrier(2)

    def run(machine: Machine) -> None:
        start.wait()
        try:
            outcomes.append(approve(machine.settings, gun, pid, keystore=machine.keys))
        except BadInputError as exc:
            outcomes.append(exc)

    threads = [
        threading.Thread(target=run, args=(m,))
        for m in (two.bob, Machine(carol_settings, carol_keys))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    published = [o for o in outcomes if isinstance(o, Approval) and o.published]
    refused = [o for o in outcomes if isinstance(o, BadInputError)]
    assert len(published) == 1 and len(refused) == 1
    assert "no pending change" in str(refused[0])
    trusted = verify_tag(two.client("c"), two.repo.tag("v1"))
    assert trusted.digest == digest_for("v1") and len(trusted.signers) == 2


def test_push_below_the_threshold_leaves_a_pending_change(
    settings: Settings,
    passphrase_env: Path,
    tmp_path: Path,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fresh_trust_client: Callable[[str], Settings],
) -> None:
    """`push` with content trust on and only alice's key of a 2-of-2 releases: the image is
    uploaded, its signature waits for bob, nobody trusts the tag until he approves."""
    from trustkit.pipeline.flows import pull_image
    from trustkit.refs import parse

    ref = registry.ref(repo_name)
    gun = parse(ref).gun
    alice_keys = KeyStore(settings)
    alice = alice_keys.generate(role="delegation", name="alice")
    bob_settings = settings.with_changes(
        trust_dir=tmp_path / "bob", trust_server=f"file://{settings.local_server_dir}"
    )
    bob_keys = KeyStore(bob_settings)
    bob = bob_keys.generate(role="delegation", name="bob")
    add_signer(settings, gun, "alice", [alice.public_key], keystore=alice_keys)
    add_signer(settings, gun, "bob", [bob.public_key], threshold=2, keystore=alice_keys)
    image = oci_image()
    monkeypatch.setenv("SERVIN_CONTENT_TRUST", "1")
    with pytest.raises(SystemExit) as exited:
        main(["push", image.oci, ref])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    match = re.search(r"pending change (\S+)", out)
    assert match and "Signed 1 of 2 required signatures for targets/releases" in out
    assert f"trustkit trust approve {gun} {match.group(1)}" in out
    client = fresh_trust_client("c")
    with pytest.raises(UntrustedError):
        verify_tag(client, parse(ref))
    approval = approve(bob_settings, gun, match.group(1), keystore=bob_keys)
    if not approval.published:  # bob has no snapshot/timestamp keys: alice publishes
        assert approve(settings, gun, match.group(1), keystore=alice_keys).published
    trusted = verify_tag(client, parse(ref))
    assert trusted.digest == image.digest
    assert {"alice", "bob"} <= set(trusted.signers)
    assert pull_image(client, ref, verify=True).descriptor.digest == trusted.digest


def test_pending_expiry_is_judged_by_the_injected_clock(two: TwoSigners) -> None:
    """Time comes from Services: a pending change past its role's expiry is stale then."""
    from datetime import UTC, datetime, timedelta

    from trustkit.services import Services

    pending_id = _propose_v1(two)
    now = Services(two.bob.settings)
    [fresh] = list_pending(now, two.repo.gun)
    assert fresh.problem is None
    later = Services(two.bob.settings, clock=lambda: datetime.now(UTC) + timedelta(days=4000))
    [stale] = list_pending(later, two.repo.gun)
    assert stale.id == pending_id and stale.problem is not None and "expired" in stale.problem
    with pytest.raises(StalePendingError, match="expired"):
        approve(later, two.repo.gun, pending_id, keystore=two.bob.keys)
