"""Refuse before publishing (issue 15): a push that is refused — by policy, a missing scanner, a
locked key or a signing threshold this machine cannot meet — leaves the registry's tags as they
were, and ``--json`` prints the refusal on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.base import run_cli, use_cli_env
from fixtures.registry import BuiltImage, Registry

from trustkit.config import Settings
from trustkit.refs import parse
from trustkit.registry import open_image_location

pytestmark = pytest.mark.registry


def _tags(settings: Settings, ref: str) -> list[str]:
    """The registry's tag list for ``ref``'s repository, asked of the registry itself."""
    from trustkit.errors import NotFoundError

    location = open_image_location(settings, ref)
    try:
        return sorted(location.list_tags())
    except NotFoundError:
        return []
    finally:
        location.close()


@pytest.fixture
def trust_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    use_cli_env(monkeypatch, settings)
    monkeypatch.setenv("SERVIN_CONTENT_TRUST", "1")
    return settings


@pytest.fixture
def signed_v1(
    trust_env: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """A repository with v1 pushed and signed: the state every refused push must leave."""
    ref = registry.ref(repo_name, "v1")
    code, _, err = run_cli(["push", oci_image(name="v1").oci, ref], capsys)
    assert code == 0, err
    assert _tags(trust_env, ref) == ["v1"]
    return ref


def _refused_json(out: str, dest: str) -> dict[str, object]:
    doc = json.loads(out)
    assert doc["refused"] is True and doc["destination"] == dest and doc["signed"] is False
    assert isinstance(doc["error"], dict) and doc["error"]["message"]
    return doc


def test_push_refused_by_policy_leaves_the_tags_and_prints_json(
    signed_v1: str,
    trust_env: Settings,
    oci_image: Callable[..., BuiltImage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = tmp_path / "alice-only.yaml"
    policy.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: alice-only\naction: BLOCK\n"
        "rules:\n  require_signed:\n    signers: [alice]\n"
    )
    dest = signed_v1.replace(":v1", ":v2")
    code, out, err = run_cli(
        ["push", "--json", "--policy", str(policy), oci_image(name="v2").oci, dest], capsys
    )
    assert code == 1, err
    doc = _refused_json(out, dest)
    verdict = doc["verdict"]
    assert isinstance(verdict, dict) and verdict["allow"] is False
    assert "alice-only" in err and err.count("\n") == 1
    assert _tags(trust_env, dest) == ["v1"]


def test_policy_needing_a_scan_is_judged_before_the_tag(
    signed_v1: str,
    trust_env: Settings,
    oci_image: Callable[..., BuiltImage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A scan policy about content the registry does not hold yet is judged after the blobs are
    uploaded — but before the tag is written, so the tag list is still unchanged."""
    policy = tmp_path / "needs-scan.yaml"
    policy.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: needs-scan\naction: BLOCK\n"
        "rules:\n  require_scan: true\n"
    )
    dest = signed_v1.replace(":v1", ":v3")
    code, out, err = run_cli(
        ["push", "-o", "json", "--policy", str(policy), oci_image(name="v3").oci, dest], capsys
    )
    assert code in (1, 2), err
    _refused_json(out, dest)
    assert _tags(trust_env, dest) == ["v1"]


def test_push_refused_by_a_missing_scanner_uploads_nothing(
    signed_v1: str,
    trust_env: Settings,
    oci_image: Callable[..., BuiltImage],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trustkit.keys import KeyStore

    KeyStore(trust_env).generate(role="scanner", name="scanner")
    image = oci_image(name="scanme")
    dest = signed_v1.replace(":v1", ":scanme")
    monkeypatch.setenv("SERVIN_SCANNER", "no-such-scanner-xyz image -f json")
    code, out, err = run_cli(["push", "--json", "--scan", image.oci, dest], capsys)
    assert code == 3, err
    assert "no-such-scanner-xyz" in _refused_json(out, dest)["error"]["message"]  # type: ignore[index]
    assert _tags(trust_env, dest) == ["v1"]
    # refused before the first blob: the registry does not even hold the manifest by digest
    location = open_image_location(trust_env, dest)
    try:
        assert not location.blob_exists(image.blobs[-1])
    finally:
        location.close()


def test_push_refused_by_a_locked_key_uploads_nothing(
    signed_v1: str,
    trust_env: Settings,
    oci_image: Callable[..., BuiltImage],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE", "not-the-passphrase")
    image = oci_image(name="locked")
    dest = signed_v1.replace(":v1", ":ci1")
    code, out, err = run_cli(["push", "--json", image.oci, dest], capsys)
    assert code == 2, err
    _refused_json(out, dest)
    assert _tags(trust_env, dest) == ["v1"]
    location = open_image_location(trust_env, dest)
    try:
        assert not location.blob_exists(image.blobs[-1])
    finally:
        location.close()


def test_push_refused_by_an_unmet_threshold_uploads_nothing(
    signed_v1: str,
    trust_env: Settings,
    oci_image: Callable[..., BuiltImage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The repository (targets) role needs two signatures and this machine holds one key."""
    from trustkit.collections.model import expiries_for
    from trustkit.collections.repository import Collection
    from trustkit.services import Services

    services = Services(trust_env)
    gun = parse(signed_v1).gun
    collection = Collection.load(services.store, gun)
    assert collection is not None
    # a second repository key signs once here, then lives on another machine only
    other = services.keys.generate(role="targets", gun=gun)
    root = collection.edit_root()
    root.add_key(other.public_key, "targets")
    root.roles["targets"].threshold = 2
    collection.edit_targets()
    collection.publish(services.keys, expiries_for(trust_env), services.store)
    services.keys.remove(other.keyid)
    services.close()

    image = oci_image(name="threshold")
    dest = signed_v1.replace(":v1", ":v4")
    code, out, err = run_cli(["push", "--json", image.oci, dest], capsys)
    assert code == 1, err
    doc = _refused_json(out, dest)
    assert doc["error"]["kind"] == "below-threshold", err  # type: ignore[index]
    assert "needs 2 signatures" in err
    assert _tags(trust_env, dest) == ["v1"]


def test_pull_json_prints_the_refusal(
    trust_env: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = registry.ref(repo_name, "unsigned")
    code, _, err = run_cli(["push", "--disable-content-trust", oci_image().oci, ref], capsys)
    assert code == 0, err
    code, out, err = run_cli(["pull", "--output", "json", ref], capsys)
    assert code == 1
    doc = json.loads(out)
    assert doc["refused"] is True and doc["reference"] == ref
    assert doc["error"]["kind"] == "unsigned"


def test_a_registry_error_after_the_upload_leaves_no_tag(
    signed_v1: str,
    trust_env: Settings,
    oci_image: Callable[..., BuiltImage],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The blobs and the manifest (by digest) are up, then the signing step fails the way a
    registry-stored collection does when the registry errors: the tag was never written."""
    import trustkit.collections as collections
    from trustkit.errors import RegistryError

    def registry_fails(*args: object, **kwargs: object) -> None:
        raise RegistryError("registry answered 500 while publishing trust data")

    monkeypatch.setattr(collections, "sign_or_propose", registry_fails)
    image = oci_image(name="after-upload")
    dest = signed_v1.replace(":v1", ":v5")
    code, out, err = run_cli(["push", "-o", "json", image.oci, dest], capsys)
    assert code == 3, err
    assert _refused_json(out, dest)["error"]["exitCode"] == 3  # type: ignore[index]
    assert _tags(trust_env, dest) == ["v1"]
    location = open_image_location(trust_env, dest)
    try:  # it did get as far as the upload: the content is there, untagged
        assert location.blob_exists(image.blobs[-1])
    finally:
        location.close()
