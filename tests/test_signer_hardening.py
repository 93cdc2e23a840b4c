"""Issue 14, "Trust and signers": each test attacks the way the review did.

- a stolen signer key signs ``evil``; removing that signer must not launder the signature;
- one key added to two signers must not count as two signers;
- a scanner key must not become a tag signer;
- ``trust sign`` without ``--digest`` must not silently sign whatever the registry serves now.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fixtures.registry import BuiltImage, Registry, use_registry
from fixtures.trust import TrustedRepo, digest_for

from trustkit.cli import cli, main
from trustkit.collections import (
    add_signer,
    list_signed_tags,
    remove_signer,
    sign_tag,
    trust_evidence,
    verify_tag,
)
from trustkit.config import Settings
from trustkit.errors import BadInputError, FailureKind, KeyStoreError, NotSignedError
from trustkit.keys import KeyRecord, KeyStore
from trustkit.keys.pem import public_key_pem
from trustkit.refs import ImageRef, parse


class _Without(KeyStore):
    """The same key store with some private keys missing: what a thief holds, or a signer
    who holds only their own key."""

    def __init__(self, base: KeyStore, hidden: set[str]) -> None:
        self.__dict__.update(base.__dict__)
        self._hidden = hidden

    def has_private(self, keyid: str) -> bool:
        return keyid not in self._hidden and super().has_private(keyid)


@pytest.fixture
def bob(trusted_repo: TrustedRepo) -> KeyRecord:
    record = trusted_repo.keystore.generate(role="delegation", name="bob")
    add_signer(
        trusted_repo.settings,
        trusted_repo.gun,
        "bob",
        [record.public_key],
        keystore=trusted_repo.keystore,
    )
    return record


# --- removing a signer does not launder its signatures ------------------------------------
def test_removing_a_stolen_signer_key_revokes_what_only_it_signed(
    trusted_repo: TrustedRepo, bob: KeyRecord, fresh_trust_client: Callable[[str], Settings]
) -> None:
    repo, owner = trusted_repo, trusted_repo.keystore
    repo.sign("v1")  # alice and bob both sign v1 (both keys are here)
    # the thief holds alice's key (and the store's snapshot/timestamp, as a server would)
    thief = _Without(owner, {bob.keyid})
    sign_tag(repo.settings, repo.tag("evil"), digest=digest_for("evil"), size=66, keystore=thief)
    assert verify_tag(fresh_trust_client("before"), repo.tag("evil")).signers == ("alice",)

    result = remove_signer(repo.settings, repo.gun, "alice", keystore=owner)

    assert [(t.tag, t.digest, t.vouched_by_remaining) for t in result.untrusted] == [
        ("evil", digest_for("evil"), False)
    ]
    for client in (repo.settings, fresh_trust_client("after")):
        with pytest.raises(NotSignedError):
            verify_tag(client, repo.tag("evil"))
        trusted = verify_tag(client, repo.tag("v1"))  # bob vouched for v1 himself
        assert (trusted.digest, trusted.signers) == (digest_for("v1"), ("bob",))
    evidence = trust_evidence(repo.settings, repo.ref.with_digest(digest_for("evil")))
    assert evidence.failure is FailureKind.UNSIGNED


def test_removal_without_remaining_keys_leaves_nothing_trusted_by_the_removed_key(
    trusted_repo: TrustedRepo, bob: KeyRecord
) -> None:
    """The admin holds no remaining releases key: the thief-signed releases keeps only the
    removed key's signature, so none of its tags count until bob signs again."""
    repo, owner = trusted_repo, trusted_repo.keystore
    thief = _Without(owner, {bob.keyid})
    sign_tag(repo.settings, repo.tag("evil"), digest=digest_for("evil"), size=66, keystore=thief)
    admin = _Without(owner, {bob.keyid})
    result = remove_signer(repo.settings, repo.gun, "alice", keystore=admin)
    assert [t.tag for t in result.untrusted] == ["evil"]
    assert any("no valid signatures left" in w for w in result.warnings)
    with pytest.raises(Exception) as caught:
        verify_tag(repo.settings, repo.tag("evil"))
    assert getattr(caught.value, "exit_code", None) == 1


def test_removal_refused_where_it_would_leave_a_stolen_signature_trusted(
    trusted_repo: TrustedRepo, bob: KeyRecord
) -> None:
    """bob re-signed releases after the thief (his sign covers the whole role): removing alice
    here, without bob's key, cannot take ``evil`` out, so it is refused, not silently kept."""
    repo, owner = trusted_repo, trusted_repo.keystore
    thief = _Without(owner, {bob.keyid})
    sign_tag(repo.settings, repo.tag("evil"), digest=digest_for("evil"), size=66, keystore=thief)
    bob_only = _Without(owner, {repo.signer.keyid})
    sign_tag(repo.settings, repo.tag("v2"), digest=digest_for("v2"), size=2, keystore=bob_only)
    admin = _Without(owner, {bob.keyid})
    with pytest.raises(KeyStoreError, match="tags evil were signed only by its keys"):
        remove_signer(repo.settings, repo.gun, "alice", keystore=admin)
    remove_signer(repo.settings, repo.gun, "alice", keystore=owner)  # where bob's key is
    assert [t.tag for t in list_signed_tags(repo.settings, repo.gun)] == ["v2"]


def test_signer_remove_cli_lists_lost_tags_and_how_to_resign(
    trusted_repo: TrustedRepo, bob: KeyRecord, passphrase_env: Path
) -> None:
    repo, owner = trusted_repo, trusted_repo.keystore
    thief = _Without(owner, {bob.keyid})
    sign_tag(repo.settings, repo.tag("evil"), digest=digest_for("evil"), size=66, keystore=thief)
    result = CliRunner().invoke(cli, ["trust", "signer", "remove", "alice", repo.ref.repository])
    assert result.exit_code == 0, result.output
    assert f"evil {digest_for('evil')} (signed only by alice)" in result.output
    assert (
        f"trustkit trust sign {repo.ref.repository}:evil --digest {digest_for('evil')} --size 66"
        in result.output
    )


# --- signers are counted by key -----------------------------------------------------------
def test_one_key_in_two_signers_is_one_key(trusted_repo: TrustedRepo) -> None:
    repo = trusted_repo
    alice_key = repo.signer.public_key
    change = add_signer(repo.settings, repo.gun, "bob", [alice_key], keystore=repo.keystore)
    assert any("already held by signer alice" in w for w in change.warnings)
    again = add_signer(repo.settings, repo.gun, "bob", [alice_key], keystore=repo.keystore)
    assert any("already belongs to signer bob" in w for w in again.warnings)
    repo.sign("v1")
    evidence = trust_evidence(repo.settings, repo.tag("v1"))
    assert evidence.signer_names == ("alice", "bob")  # two names ...
    assert evidence.keyids == frozenset({repo.signer.keyid})  # ... one key


def test_signer_add_cli_warns_about_a_shared_key(
    trusted_repo: TrustedRepo, passphrase_env: Path, tmp_path: Path
) -> None:
    pub = tmp_path / "alice.pub"
    pub.write_bytes(public_key_pem(trusted_repo.signer.public_key))
    result = CliRunner().invoke(
        cli, ["trust", "signer", "add", "--key", str(pub), "bob", trusted_repo.ref.repository]
    )
    assert result.exit_code == 0, result.output
    assert "already held by signer alice" in result.output


# --- keys keep their roles ----------------------------------------------------------------
def test_scanner_key_refused_as_tag_signer(trusted_repo: TrustedRepo) -> None:
    scanner = trusted_repo.keystore.generate(role="scanner", name="trivy")
    with pytest.raises(BadInputError, match="is a scanner key"):
        add_signer(
            trusted_repo.settings,
            trusted_repo.gun,
            "trivy",
            [scanner.public_key],
            keystore=trusted_repo.keystore,
        )
    assert "targets/trivy" not in str(
        [t.signers for t in list_signed_tags(trusted_repo.settings, trusted_repo.gun)]
    )


# --- trust sign without --digest ----------------------------------------------------------
def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_sign_without_digest_shows_it_and_refuses_a_moved_tag(
    settings: Settings,
    passphrase_env: Path,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    trust_signer_key: KeyRecord,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trustkit.pipeline.flows import push_image

    use_registry(settings, registry)
    dest = registry.ref(repo_name, "v1")
    first, second = oci_image(name="first"), oci_image(name="second")
    push_image(settings, first.oci, dest, sign=False)
    pub = tmp_path / "alice.pub"
    pub.write_bytes(public_key_pem(trust_signer_key.public_key))
    repository = dest.rsplit(":", 1)[0]
    assert _invoke("trust", "signer", "add", "--key", str(pub), "alice", repository).exit_code == 0

    signed = _invoke("trust", "sign", dest)
    assert signed.exit_code == 0, signed.output
    assert f"at {first.digest} (size {first.size})" in signed.output

    push_image(settings, second.oci, dest, sign=False)  # whoever can push overwrites v1
    with pytest.raises(SystemExit) as caught:
        main(["trust", "sign", dest])
    err = capsys.readouterr().err
    assert caught.value.code == 1
    assert f"is signed at {first.digest}, but the registry now serves {second.digest}" in err
    assert len(err.strip().splitlines()) == 1
    assert verify_tag(settings, _ref(dest)).digest == first.digest  # nothing re-signed

    forced = _invoke("trust", "sign", "--force", dest)
    assert forced.exit_code == 0, forced.output
    assert verify_tag(settings, _ref(dest)).digest == second.digest


def _ref(text: str) -> ImageRef:
    return parse(text)
