"""The warm fast path of ``trust verify`` (ADR 0017), attacked on every store kind.

Each ``verify`` below is a new process as far as trustkit can tell: a fresh ``Services`` and no
in-process session left. ``full_paths`` counts how often python-tuf's workflow ran; a warm
answer is one that did not run it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fixtures.base import run_cli, use_cli_env
from fixtures.stores import TUF_STORE_KINDS, adversary_for, settings_on_store_kind
from fixtures.trust import TrustedRepo, digest_for

from trustkit.collections import (
    Expiries,
    TrustedTarget,
    revoke,
    rotate_key,
    sign_tag,
    warm,
)
from trustkit.collections import client as tuf_client
from trustkit.collections.engine import verify_tag as full_verify
from trustkit.config import Settings
from trustkit.errors import ExpiredMetadataError, NotSignedError, RollbackError, UntrustedError
from trustkit.refs import ImageRef
from trustkit.registry import client as registry_client
from trustkit.services import Services
from trustkit.stores import escape_gun


@pytest.fixture(params=TUF_STORE_KINDS)
def settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    """The base settings, with the trust data in a fresh store of each TUF kind (these cases
    edit TUF metadata; Notary's are in tests/test_notary_verifier.py)."""
    return settings_on_store_kind(settings, request.param, tmp_path)


@pytest.fixture
def full_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every run of the full (python-tuf) path, by GUN."""
    calls: list[str] = []
    real = tuf_client.session_for

    def counting(*args: object, **kwargs: object) -> tuf_client.TrustSession:
        calls.append(str(args[2]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tuf_client, "session_for", counting)
    return calls


@pytest.fixture(autouse=True)
def _no_sessions_left() -> Iterator[None]:
    tuf_client.forget_sessions()
    yield
    tuf_client.forget_sessions()


def verify(settings: Settings, ref: ImageRef) -> TrustedTarget:
    """``trust verify`` as a new process runs it."""
    tuf_client.forget_sessions()
    with Services(settings) as services:
        return warm.verify_tag(services, ref)


def warm_file(repo: TrustedRepo) -> Path:
    return repo.settings.client_cache_dir / escape_gun(repo.gun) / warm.WARM_FILE


def test_second_verify_is_answered_without_python_tuf(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    first = verify(signed_repo.settings, signed_repo.tag("v1"))
    assert full_paths == [signed_repo.gun]
    second = verify(signed_repo.settings, signed_repo.tag("v1"))
    assert full_paths == [signed_repo.gun]  # no second full path
    assert second == first
    assert (second.digest, second.size, second.signers) == (digest_for("v1"), 1234, ("alice",))
    assert warm_file(signed_repo).stat().st_mode & 0o077 == 0  # private, like the cache


def test_a_tag_not_yet_remembered_takes_the_full_path(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    signed_repo.sign("v2")
    verify(signed_repo.settings, signed_repo.tag("v1"))
    assert verify(signed_repo.settings, signed_repo.tag("v2")).digest == digest_for("v2")
    assert len(full_paths) == 2
    verify(signed_repo.settings, signed_repo.tag("v1"))
    verify(signed_repo.settings, signed_repo.tag("v2"))
    assert len(full_paths) == 2  # both remembered under the same timestamp


def test_new_timestamp_takes_the_full_path(signed_repo: TrustedRepo, full_paths: list[str]) -> None:
    verify(signed_repo.settings, signed_repo.tag("v1"))
    signed_repo.sign("v1", content="moved")  # a new publish: the tag points elsewhere now
    assert verify(signed_repo.settings, signed_repo.tag("v1")).digest == digest_for("moved")
    assert len(full_paths) == 2
    assert verify(signed_repo.settings, signed_repo.tag("v1")).digest == digest_for("moved")
    assert len(full_paths) == 2  # and the new answer is the warm one from now on


def test_revoked_tag_is_refused_not_remembered(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    verify(signed_repo.settings, signed_repo.tag("v1"))
    revoke(signed_repo.settings, signed_repo.tag("v1"), keystore=signed_repo.keystore)
    for _ in range(2):
        with pytest.raises(NotSignedError):
            verify(signed_repo.settings, signed_repo.tag("v1"))
    assert len(full_paths) == 3


def test_rotated_root_takes_the_full_path_even_with_the_old_timestamp_served(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    """The timestamp key is rotated away (root 2); the store then serves root 2 beside the old
    timestamp, byte-identical to the one the warm answer was remembered with."""
    verify(signed_repo.settings, signed_repo.tag("v1"))
    adversary = adversary_for(signed_repo.settings)
    before = adversary.save(signed_repo.gun)
    rotate_key(signed_repo.settings, signed_repo.gun, "timestamp", keystore=signed_repo.keystore)
    after = adversary.save(signed_repo.gun)
    assert after.head["root"] == before.head["root"] + 1
    replayed = after.copy()
    old_name = before.current_name("timestamp")
    replayed.head["timestamp"] = before.head["timestamp"]
    replayed.files[old_name] = before.files[old_name]
    adversary.put_state(signed_repo.gun, replayed)  # type: ignore[attr-defined]
    with pytest.raises(UntrustedError) as warm_refusal:
        verify(signed_repo.settings, signed_repo.tag("v1"))
    assert len(full_paths) == 2
    tuf_client.forget_sessions()
    with pytest.raises(UntrustedError) as full_refusal:
        full_verify(signed_repo.settings, signed_repo.tag("v1"))
    assert type(warm_refusal.value) is type(full_refusal.value)


def test_rollback_after_the_client_moved_on_is_refused(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    """A late writer left a warm file of the old state behind; the client's cache has trusted a
    newer timestamp since. The store rolls back to the old state: refused as a rollback."""
    adversary = adversary_for(signed_repo.settings)
    old_state = adversary.save(signed_repo.gun)
    verify(signed_repo.settings, signed_repo.tag("v1"))
    stale = warm_file(signed_repo).read_bytes()
    signed_repo.sign("v2")
    verify(signed_repo.settings, signed_repo.tag("v1"))  # the client trusts the new set
    warm_file(signed_repo).write_bytes(stale)  # remembered against the old timestamp
    adversary.serve_old(signed_repo.gun, old_state)
    with pytest.raises(RollbackError):
        verify(signed_repo.settings, signed_repo.tag("v1"))
    assert len(full_paths) == 3


@pytest.mark.parametrize(
    ("expiries", "role"),
    [(Expiries(timestamp=timedelta(seconds=2)), "timestamp"),
     (Expiries(delegation=timedelta(seconds=2)), "targets/releases")],
)  # fmt: skip
def test_expired_role_is_refused_exactly_as_the_full_path_refuses(
    trusted_repo: TrustedRepo, full_paths: list[str], expiries: Expiries, role: str
) -> None:
    sign_tag(
        trusted_repo.settings,
        trusted_repo.tag("v1"),
        digest=digest_for("v1"),
        size=1,
        keystore=trusted_repo.keystore,
        expiries=expiries,
    )
    verify(trusted_repo.settings, trusted_repo.tag("v1"))
    verify(trusted_repo.settings, trusted_repo.tag("v1"))
    assert len(full_paths) == 1  # warm while it lasts
    time.sleep(2.05)
    with pytest.raises(ExpiredMetadataError) as warm_refusal:
        verify(trusted_repo.settings, trusted_repo.tag("v1"))
    assert len(full_paths) == 2
    tuf_client.forget_sessions()
    with pytest.raises(ExpiredMetadataError) as full_refusal:
        full_verify(trusted_repo.settings, trusted_repo.tag("v1"))
    assert str(warm_refusal.value) == str(full_refusal.value)
    assert f"{role} metadata of {trusted_repo.gun} expired" in str(warm_refusal.value)


def _valid_doc(repo: TrustedRepo) -> dict[str, object]:
    doc = json.loads(warm_file(repo).read_bytes())
    assert isinstance(doc, dict)
    return doc


CORRUPTIONS: dict[str, Callable[[dict[str, object]], bytes]] = {
    "garbage": lambda doc: b"\x00\xff not json",
    "truncated": lambda doc: json.dumps(doc).encode()[:-7],
    "oversized": lambda doc: b" " * (warm.MAX_WARM_BYTES + 1) + json.dumps(doc).encode(),
    "not an object": lambda doc: b"[]",
    "deep nesting": lambda doc: b"[" * 100_000 + b"]" * 100_000,
    "other format": lambda doc: json.dumps({**doc, "format": "trustkit-warm/0"}).encode(),
    "other store": lambda doc: json.dumps({**doc, "store": "someone else's store"}).encode(),
    "answers a list": lambda doc: json.dumps({**doc, "answers": []}).encode(),
    "bad digest": lambda doc: json.dumps(
        {**doc, "answers": {"v1": {**doc["answers"]["v1"], "digest": "sha256:1"}}}  # type: ignore[index,dict-item]
    ).encode(),
    "negative size": lambda doc: json.dumps(
        {**doc, "answers": {"v1": {**doc["answers"]["v1"], "size": -1}}}  # type: ignore[index,dict-item]
    ).encode(),
    "expiry not a number": lambda doc: json.dumps(
        {**doc, "answers": {"v1": {**doc["answers"]["v1"], "expires": "never"}}}  # type: ignore[index,dict-item]
    ).encode(),
    "expiry out of range": lambda doc: json.dumps(
        {**doc, "answers": {"v1": {**doc["answers"]["v1"], "expires": 10**20}}}  # type: ignore[index,dict-item]
    ).encode(),
    "root version a string": lambda doc: json.dumps({**doc, "root_version": "1"}).encode(),
    "bad timestamp hash": lambda doc: json.dumps({**doc, "timestamp_sha256": "00"}).encode(),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_warm_file_takes_the_full_path(
    signed_repo: TrustedRepo, full_paths: list[str], corruption: str
) -> None:
    verify(signed_repo.settings, signed_repo.tag("v1"))
    warm_file(signed_repo).write_bytes(CORRUPTIONS[corruption](_valid_doc(signed_repo)))
    assert verify(signed_repo.settings, signed_repo.tag("v1")).digest == digest_for("v1")
    assert len(full_paths) == 2
    verify(signed_repo.settings, signed_repo.tag("v1"))  # the full path wrote it again
    assert len(full_paths) == 2


def test_warm_file_that_is_a_directory_takes_the_full_path(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    verify(signed_repo.settings, signed_repo.tag("v1"))
    warm_file(signed_repo).unlink()
    warm_file(signed_repo).mkdir()
    assert verify(signed_repo.settings, signed_repo.tag("v1")).digest == digest_for("v1")
    assert len(full_paths) == 2


def test_a_changed_answer_in_the_warm_file_is_not_used_after_a_publish(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    """The answer is tied to the timestamp it was verified under: after any publish, what the
    file says no longer counts, whatever it says."""
    verify(signed_repo.settings, signed_repo.tag("v1"))
    doc = _valid_doc(signed_repo)
    signed_repo.sign("v2")
    doc["answers"] = {"v2": {**doc["answers"]["v1"], "digest": digest_for("evil")}}  # type: ignore[index]
    warm_file(signed_repo).write_text(json.dumps(doc))
    assert verify(signed_repo.settings, signed_repo.tag("v2")).digest == digest_for("v2")
    assert len(full_paths) == 2


def test_many_tags_keep_the_file_bounded(signed_repo: TrustedRepo, full_paths: list[str]) -> None:
    entries = [f"t{i}" for i in range(5)]
    for tag in entries:
        signed_repo.sign(tag)
    for tag in entries:
        verify(signed_repo.settings, signed_repo.tag(tag))
    doc = _valid_doc(signed_repo)
    assert sorted(doc["answers"]) == sorted(entries)  # type: ignore[arg-type]
    assert len(warm_file(signed_repo).read_bytes()) < warm.MAX_WARM_BYTES


def test_the_oldest_answers_make_room_when_the_file_would_be_too_large(
    signed_repo: TrustedRepo, full_paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_repo.sign("v2")
    verify(signed_repo.settings, signed_repo.tag("v1"))
    one_answer = len(warm_file(signed_repo).read_bytes())
    monkeypatch.setattr(warm, "MAX_WARM_BYTES", one_answer + 50)  # room for one answer only
    verify(signed_repo.settings, signed_repo.tag("v2"))
    assert list(_valid_doc(signed_repo)["answers"]) == ["v2"]  # type: ignore[call-overload]
    verify(signed_repo.settings, signed_repo.tag("v2"))
    assert len(full_paths) == 2


@pytest.mark.filterwarnings("always")  # every run warns, not only the first with this text
def test_cli_warm_answer_prints_what_the_full_path_prints(
    trusted_repo: TrustedRepo,
    full_paths: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``trust verify`` and ``--json``, cold then warm: the same output, the same expiry
    warning (the timestamp expires within the warning window)."""
    sign_tag(
        trusted_repo.settings,
        trusted_repo.tag("v1"),
        digest=digest_for("v1"),
        size=1,
        keystore=trusted_repo.keystore,
        expiries=Expiries(timestamp=timedelta(days=1)),
    )
    use_cli_env(monkeypatch, trusted_repo.settings)
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", trusted_repo.settings.trust_store_url)
    for argv in (["trust", "verify"], ["trust", "verify", "--json"]):
        runs = []
        for _ in range(2):
            tuf_client.forget_sessions()
            runs.append(run_cli([*argv, str(trusted_repo.tag("v1"))], capsys))
        (cold_code, cold_out, cold_err), (warm_code, warm_out, warm_err) = runs
        assert cold_code == warm_code == 0
        assert warm_out == cold_out and digest_for("v1") in warm_out
        assert "warning: trust data of" in cold_err and "expires in 23 h" in cold_err
        assert warm_err == cold_err
    assert len(full_paths) == 1  # only the very first verify ran python-tuf


def test_registry_store_warm_verify_reads_only_the_timestamp(
    signed_repo: TrustedRepo, full_paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the registry store the warm check is the store's own read of the current timestamp
    (the head manifest; the timestamp inline or by digest) and nothing else."""
    if not signed_repo.settings.trust_store_url.startswith("oci://"):
        pytest.skip("registry store only")
    verify(signed_repo.settings, signed_repo.tag("v1"))
    sent: list[str] = []
    real = registry_client.RegistryClient._send

    def counting(self: object, method: str, url: object, *args: object, **kwargs: object) -> object:
        sent.append(f"{method} {url}")
        return real(self, method, url, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(registry_client.RegistryClient, "_send", counting)
    assert verify(signed_repo.settings, signed_repo.tag("v1")).digest == digest_for("v1")
    assert len(full_paths) == 1
    assert 1 <= len(sent) <= 2, sent
    assert "/manifests/" in sent[0]


def test_notary_store_kinds_are_the_only_ones_left_out() -> None:
    assert {"file", "memory", "registry"} <= set(TUF_STORE_KINDS)


def test_pinned_root_file_always_takes_the_full_path(
    signed_repo: TrustedRepo, full_paths: list[str], tmp_path: Path
) -> None:
    verify(signed_repo.settings, signed_repo.tag("v1"))
    root = adversary_for(signed_repo.settings).save(signed_repo.gun).files["1.root.json"]
    pinned = tmp_path / "root.json"
    pinned.write_bytes(root)
    with Services(signed_repo.settings) as services:
        found = warm.verify_tag(services, signed_repo.tag("v1"), root_file=pinned)
    assert found.digest == digest_for("v1") and len(full_paths) == 2  # engine's own path
    assert "v1" in _valid_doc(signed_repo)["answers"]  # type: ignore[operator]


# --- the tag's own evidence (a pull's pre-pull check, ADR 0016) ---------------------------
def evidence(settings: Settings, ref: ImageRef, *, every_tag: bool = False):  # type: ignore[no-untyped-def]
    """``check_trust`` as a new process runs it."""
    from trustkit.pipeline.check import check_trust

    tuf_client.forget_sessions()
    with Services(settings) as services:
        return check_trust(services, ref, every_tag=every_tag)


def _full_evidence(settings: Settings, ref: ImageRef):  # type: ignore[no-untyped-def]
    from trustkit.collections.engine import trust_evidence

    tuf_client.forget_sessions()
    with Services(settings) as services:
        return trust_evidence(services, ref, every_tag=False)


def test_a_tags_own_evidence_is_answered_warm_and_equals_the_full_one(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    ref = signed_repo.tag("v1")
    first = evidence(signed_repo.settings, ref)
    assert first.verified and full_paths
    full_paths.clear()
    second = evidence(signed_repo.settings, ref)
    assert not full_paths  # no python-tuf
    assert second == first == _full_evidence(signed_repo.settings, ref)
    assert second.signers and second.signers[0].keyids
    assert second.tags == ("v1",) and second.complete is False


def test_warm_evidence_of_a_moved_tag_says_so_as_the_full_path_does(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    evidence(signed_repo.settings, signed_repo.tag("v1"))
    full_paths.clear()
    moved = signed_repo.tag("v1").with_digest(digest_for("other"))
    warm_answer = evidence(signed_repo.settings, moved)
    assert not full_paths
    assert not warm_answer.verified
    assert warm_answer == _full_evidence(signed_repo.settings, moved)


def test_warm_evidence_takes_the_full_path_after_a_revocation(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    ref = signed_repo.tag("v1")
    evidence(signed_repo.settings, ref)
    revoke(signed_repo.settings, ref, keystore=signed_repo.keystore)
    full_paths.clear()
    after = evidence(signed_repo.settings, ref)
    assert full_paths  # a new timestamp: python-tuf ran
    assert not after.verified


def test_every_tag_evidence_never_takes_the_warm_path(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    ref = signed_repo.tag("v1")
    evidence(signed_repo.settings, ref)
    full_paths.clear()
    complete = evidence(signed_repo.settings, ref, every_tag=True)
    assert full_paths and complete.complete is True


def test_a_verify_keeps_the_evidence_already_remembered(
    signed_repo: TrustedRepo, full_paths: list[str]
) -> None:
    ref = signed_repo.tag("v1")
    evidence(signed_repo.settings, ref)
    verify(signed_repo.settings, ref)  # warm: rewrites nothing
    doc = json.loads(warm_file(signed_repo).read_bytes())
    assert "evidence" in doc["answers"]["v1"]
    full_paths.clear()
    assert evidence(signed_repo.settings, ref).verified
    assert not full_paths
