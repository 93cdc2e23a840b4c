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


def _scan_policy(tmp_path: Path, scanner_keyid: str) -> Path:
    """BLOCK without a trusted scan, and BLOCK HIGH and above."""
    policy = tmp_path / "needs-scan.yaml"
    policy.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: needs-scan\naction: BLOCK\n"
        f"rules:\n  require_scan: true\n  severity: HIGH\n  trusted_scanners: [{scanner_keyid}]\n"
    )
    return policy


def _registry_holds(registry: Registry, ref: str, image: BuiltImage) -> dict[str, object]:
    """What the registry itself answers for ``ref``'s repository (plain HTTP, not trustkit's
    client): the catalog, the tag list, and whether the image's manifest and each of its blobs
    are there by digest."""
    import httpx

    path = parse(ref).path
    with httpx.Client(base_url=registry.url, timeout=10) as http:
        catalog = http.get("/v2/_catalog").json()["repositories"] or []
        listed = http.get(f"/v2/{path}/tags/list")
        tags = sorted(listed.json()["tags"] or []) if listed.status_code == 200 else []
        accept = {"Accept": image.media_type}
        manifest = http.head(f"/v2/{path}/manifests/{image.digest}", headers=accept).status_code
        blobs = [http.head(f"/v2/{path}/blobs/{d}").status_code for d in image.blobs]
    return {
        "catalog": sorted(catalog),
        "tags": tags,
        "manifest": manifest == 200,
        "blobs": [code == 200 for code in blobs],
    }


@pytest.fixture
def scanner_keyid(trust_env: Settings) -> str:
    from trustkit.keys import KeyStore

    return KeyStore(trust_env).generate(role="scanner", name="scanner").keyid


def _report_of(tmp_path: Path, sample: Path, image: BuiltImage, dest: str) -> Path:
    """A scanner report of the image being pushed (the sample's findings, about its digest)."""
    from fixtures.reports import retarget

    report = tmp_path / f"{sample.stem}.report.json"
    report.write_bytes(
        retarget(sample.read_bytes(), digest=image.digest, repository=parse(dest).repository)
    )
    return report


def test_scan_policy_without_a_scan_refuses_before_the_first_blob(
    signed_v1: str,
    trust_env: Settings,
    registry: Registry,
    scanner_keyid: str,
    oci_image: Callable[..., BuiltImage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No scan at push time, content the registry does not hold: no scan can exist for it, so a
    policy requiring one refuses before anything is uploaded."""
    image = oci_image(name="v3")
    dest = signed_v1.replace(":v1", ":v3")
    before = _registry_holds(registry, dest, image)
    assert "v1" in before["tags"] and "v3" not in before["tags"]  # type: ignore[operator]
    assert before["manifest"] is False
    policy = _scan_policy(tmp_path, scanner_keyid)
    code, out, err = run_cli(
        ["push", "-o", "json", "--policy", str(policy), image.oci, dest], capsys
    )
    assert code == 1, err
    doc = _refused_json(out, dest)
    assert doc["error"]["exitCode"] == 1  # type: ignore[index]
    assert "the content has no scan yet" in err and "needs-scan" in err
    assert doc["verdict"]["allow"] is False  # type: ignore[index]
    assert _registry_holds(registry, dest, image) == before  # not one byte uploaded


def _push_scanned(
    tmp_path: Path,
    registry: Registry,
    scanner_keyid: str,
    image: BuiltImage,
    dest: str,
    sample: Path,
    capsys: pytest.CaptureFixture[str],
) -> tuple[dict[str, object], tuple[int, str, str]]:
    """``push --json --scan`` of ``image`` to ``dest`` with a report of ``sample``'s findings,
    under the scan policy: (what the registry held before, the CLI's exit code, out, err)."""
    report = _report_of(tmp_path, sample, image, dest)
    before = _registry_holds(registry, dest, image)
    policy = _scan_policy(tmp_path, scanner_keyid)
    result = run_cli(
        ["push", "--json", "--scan", "--report", str(report), "--policy", str(policy), image.oci,
         dest],
        capsys,
    )  # fmt: skip
    return before, result


def test_push_scan_refused_by_policy_uploads_nothing(
    signed_v1: str,
    trust_env: Settings,
    registry: Registry,
    scanner_keyid: str,
    oci_image: Callable[..., BuiltImage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``push --scan``: the report of the SOURCE is signed in memory and judged before the
    upload; HIGH findings refuse with the registry exactly as it was (no blob, no manifest
    by digest, no attestation, no tag)."""
    from fixtures.pipeline import JUICE_REPORT

    image = oci_image(name="juice")
    dest = signed_v1.replace(":v1", ":juice")
    before, (code, out, err) = _push_scanned(
        tmp_path, registry, scanner_keyid, image, dest, JUICE_REPORT, capsys
    )
    assert code == 1, err
    doc = _refused_json(out, dest)
    verdict = doc["verdict"]
    assert isinstance(verdict, dict) and verdict["allow"] is False
    assert any("at or above HIGH" in r["message"] for r in verdict["reasons"])
    # judged with the scan this push made: the content is not in the registry at all
    assert "no scan yet" not in err
    after = _registry_holds(registry, dest, image)
    assert after == before and after["manifest"] is False and not any(after["blobs"])
    http_tags = after["tags"]
    assert isinstance(http_tags, list) and not any(t.endswith(".att") for t in http_tags)


def test_push_scan_that_passes_attaches_the_judged_attestation(
    signed_v1: str,
    trust_env: Settings,
    registry: Registry,
    scanner_keyid: str,
    oci_image: Callable[..., BuiltImage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A clean scan passes before the upload; after it the attestation is attached to the
    pushed digest and the tag is signed and written, as before."""
    from fixtures.pipeline import CLEAN_REPORT

    from trustkit.attest.service import verified_scans
    from trustkit.keys import KeyStore

    image = oci_image(name="clean")
    dest = signed_v1.replace(":v1", ":clean")
    before, (code, out, err) = _push_scanned(
        tmp_path, registry, scanner_keyid, image, dest, CLEAN_REPORT, capsys
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["digest"] == image.digest and doc["signed"] is True
    attestation = doc["verdict"]["details"]["attestation"]
    assert attestation["signer"] == scanner_keyid
    assert attestation["tag"] == "sha256-" + image.digest[7:] + ".att"
    after = _registry_holds(registry, dest, image)
    added = set(after["tags"]) - set(before["tags"])  # type: ignore[call-overload]
    # the tag, its attestation, the referrers fallback index and (content trust on) the cosign
    # signature
    fallback = "sha256-" + image.digest[7:]
    assert added == {"clean", attestation["tag"], fallback, fallback + ".sig"}
    assert after["manifest"] is True and all(after["blobs"])  # type: ignore[arg-type]
    # a verifier reading the registry finds that scan, signed by the scanner key, for the digest
    public = KeyStore(trust_env).records(role="scanner")[0].public_key
    scans, problems = verified_scans(
        trust_env, f"{parse(dest).repository}@{image.digest}", trusted_keys=[public], remember=False
    )
    assert problems == [] and len(scans) == 1
    assert scans[0].image_digest == image.digest and scans[0].signer_keyid == scanner_keyid


def test_scan_policy_judged_before_upload_with_the_registrys_attestation(
    signed_v1: str,
    trust_env: Settings,
    registry: Registry,
    scanner_keyid: str,
    oci_image: Callable[..., BuiltImage],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Content the registry already holds with its scan attestation: a push of it under a new
    tag without --scan is judged with that attestation before the upload, and passes."""
    from fixtures.pipeline import CLEAN_REPORT

    image = oci_image(name="again")
    first = signed_v1.replace(":v1", ":rc1")
    report = _report_of(tmp_path, CLEAN_REPORT, image, first)
    code, _, err = run_cli(["push", "--scan", "--report", str(report), image.oci, first], capsys)
    assert code == 0, err
    policy = _scan_policy(tmp_path, scanner_keyid)
    dest = signed_v1.replace(":v1", ":rc2")
    code, out, err = run_cli(
        ["push", "-o", "json", "--policy", str(policy), image.oci, dest], capsys
    )
    assert code == 0, err
    assert json.loads(out)["verdict"]["allow"] is True
    assert "rc2" in _registry_holds(registry, dest, image)["tags"]  # type: ignore[operator]


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
