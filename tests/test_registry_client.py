"""RegistryClient and copy against a real docker-registry (plain HTTP, loopback)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.registry import BuiltImage, Registry, skopeo_copy

from trustkit.config import Settings
from trustkit.errors import DigestMismatchError, InputTooLargeError, UnreachableError
from trustkit.refs import parse
from trustkit.registry import (
    OCI_INDEX,
    OCILayout,
    RegistryClient,
    copy_image,
    fetch_image,
    open_image_location,
    resolve_digest,
)
from trustkit.registry.client import NotFoundError

pytestmark = pytest.mark.registry


def _push(settings: Settings, image: BuiltImage, dest: str) -> str:
    src = open_image_location(settings, image.oci)
    target = open_image_location(settings, dest)
    try:
        return copy_image(src, target).digest
    finally:
        src.close()
        target.close()


def test_push_single_image_then_read_it_back(
    settings: Settings, registry: Registry, oci_image: Callable[..., BuiltImage], repo_name: str
) -> None:
    image = oci_image()
    digest = _push(settings, image, registry.ref(repo_name))
    assert digest == image.digest
    with RegistryClient(settings, registry.host) as client:
        manifest = client.get_manifest(repo_name, "v1")
        assert manifest.digest == image.digest
        assert manifest.data == (image.layout / "blobs/sha256" / image.digest[7:]).read_bytes()
        for blob in image.blobs:
            assert client.blob_exists(repo_name, blob)
        config = manifest.blobs()[0]
        data = client.get_blob(repo_name, config.digest, max_size=1 << 20)
        assert hashlib.sha256(data).hexdigest() == config.digest[7:]
        assert client.list_tags(repo_name) == ["v1"]
        assert repo_name in client.catalog()
        head = client.head_manifest(repo_name, "v1")
        assert head is not None and head.digest == image.digest
        assert client.head_manifest(repo_name, "nope") is None
    assert resolve_digest(settings, parse(registry.ref(repo_name))).digest == image.digest


def test_multi_arch_push_and_pull_to_layout(
    settings: Settings,
    registry: Registry,
    oci_index: Callable[..., BuiltImage],
    repo_name: str,
    tmp_path: Path,
) -> None:
    image = oci_index()
    assert _push(settings, image, registry.ref(repo_name)) == image.digest
    src = open_image_location(settings, f"{registry.host}/{repo_name}@{image.digest}")
    dest = open_image_location(settings, f"oci:{tmp_path / 'out'}:pulled")
    descriptor = fetch_image(src, expected_digest=image.digest, dest=dest)
    assert descriptor.digest == image.digest and descriptor.media_type == OCI_INDEX
    layout = OCILayout(tmp_path / "out")
    assert layout.tags() == ["pulled"]
    for blob in [*image.blobs, *image.children]:
        assert layout.blob_exists(blob)


def test_second_push_skips_blobs_and_mounts_across_repositories(
    settings: Settings, registry: Registry, oci_image: Callable[..., BuiltImage], repo_name: str
) -> None:
    from trustkit.registry.copy import _run

    image = oci_image()
    _push(settings, image, registry.ref(repo_name))
    src = open_image_location(settings, image.oci)
    again = open_image_location(settings, registry.ref(repo_name, "v2"))
    _, stats = _run(src, again, expected_digest=None)
    assert stats.blobs_copied == 0 and stats.blobs_skipped == len(image.blobs)
    other = open_image_location(settings, registry.ref(repo_name + "-copy"))
    from_registry = open_image_location(settings, registry.ref(repo_name))
    _, stats = _run(from_registry, other, expected_digest=None)
    assert stats.blobs_mounted == len(image.blobs)
    for loc in (src, again, other, from_registry):
        loc.close()


def test_chunked_and_monolithic_uploads(
    settings: Settings, registry: Registry, repo_name: str
) -> None:
    data = bytes(range(256)) * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryClient(settings, registry.host) as client:
        client.upload_blob(repo_name, data, digest, chunk_size=10_000)
        assert client.get_blob(repo_name, digest, max_size=len(data)) == data
        small = b"monolithic"
        small_digest = "sha256:" + hashlib.sha256(small).hexdigest()
        client.upload_blob(repo_name, small, small_digest)
        assert client.blob_exists(repo_name, small_digest)
        with pytest.raises(InputTooLargeError):
            client.get_blob(repo_name, digest, max_size=100)
        wrong = "sha256:" + "0" * 64
        with pytest.raises(DigestMismatchError):
            client.upload_blob(repo_name, b"other bytes", wrong)


def test_tags_pagination(settings: Settings, registry: Registry, repo_name: str) -> None:
    config = b"{}"
    manifest_for = {}
    with RegistryClient(settings, registry.host) as client:
        client.upload_blob(repo_name, config, "sha256:" + hashlib.sha256(config).hexdigest())
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                    "size": 2,
                },
                "layers": [],
            }
        ).encode()
        for tag in ("a", "b", "c", "d", "e"):
            manifest_for[tag] = client.put_manifest(
                repo_name, tag, manifest, "application/vnd.oci.image.manifest.v1+json"
            )
        assert sorted(client.list_tags(repo_name, page_size=2)) == ["a", "b", "c", "d", "e"]
        assert client.list_tags(repo_name + "-missing") == []
        # distribution 2.8 has no referrers API: callers fall back to the sha256-<hex> tag
        assert client.referrers(repo_name, manifest_for["a"]) is None


def test_tag_moved_behind_our_back_is_caught_by_digest(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
) -> None:
    v1 = oci_image(name="one")
    v2 = oci_image(name="two")
    _push(settings, v1, registry.ref(repo_name))
    skopeo_copy(f"oci:{v2.layout}:v1", f"docker://{registry.ref(repo_name)}")
    moved = resolve_digest(settings, parse(registry.ref(repo_name)))
    assert moved.digest != v1.digest  # skopeo re-serialises the manifest, so not v2.digest either
    with (
        RegistryClient(settings, registry.host) as client,
        pytest.raises(DigestMismatchError, match="expected digest"),
    ):
        client.get_manifest(repo_name, "v1", expected_digest=v1.digest)
    # A location with a trusted digest fetches by digest: the moved tag is not even consulted.
    src = open_image_location(settings, registry.ref(repo_name))
    assert fetch_image(src, expected_digest=v1.digest).digest == v1.digest
    src.close()


def test_manifest_over_4mib_is_refused(
    settings: Settings, registry: Registry, repo_name: str
) -> None:
    big = json.dumps({"schemaVersion": 2, "pad": "x" * (4 * 1024 * 1024)}).encode()
    with RegistryClient(settings, registry.host) as client, pytest.raises(InputTooLargeError):
        client.put_manifest(repo_name, "big", big, "application/vnd.oci.image.manifest.v1+json")


def test_missing_manifest_and_unreachable_registry(
    settings: Settings, registry: Registry, repo_name: str
) -> None:
    with RegistryClient(settings, registry.host) as client, pytest.raises(NotFoundError):
        client.get_manifest(repo_name, "nope")
    with RegistryClient(settings, "127.0.0.1:1") as client:
        with pytest.raises(UnreachableError, match="unreachable") as info:
            client.get_manifest("x", "v1")
        assert "\n" not in info.value.one_line()


@pytest.mark.parametrize(
    ("codes", "kind"),
    [
        (["DIGEST_INVALID"], "tampered"),
        (["DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"], "registry"),
    ],
)
def test_manifest_naming_an_unknown_blob_is_a_registry_condition(
    settings: Settings, codes: list[str], kind: str
) -> None:
    """docker-registry answers a manifest whose blob a racing writer is still uploading with
    DIGEST_INVALID *and* MANIFEST_BLOB_UNKNOWN: retryable (exit 3), not content tampering."""
    import httpx

    from trustkit.errors import RegistryError

    body = {"errors": [{"code": c, "message": c.lower()} for c in codes]}
    with RegistryClient(settings, "127.0.0.1:1") as client:
        error = client._error(httpx.Response(400, json=body), "push of manifest")
    if kind == "tampered":
        assert isinstance(error, DigestMismatchError) and error.exit_code == 1
    else:
        assert isinstance(error, RegistryError) and error.exit_code == 3
