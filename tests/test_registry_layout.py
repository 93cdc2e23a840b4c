"""OCI image layouts (oci:PATH[:TAG]) as sources and destinations, no server needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.registry import BuiltImage, Registry, skopeo_copy

from trustkit.config import Settings
from trustkit.errors import BadInputError, DigestMismatchError
from trustkit.pipeline.flows import push_image
from trustkit.registry import OCILayout, copy_image, fetch_image, open_image_location
from trustkit.registry.client import NotFoundError
from trustkit.registry.layout import parse_layout_text


def test_parse_layout_text() -> None:
    assert parse_layout_text("oci:/a/b:v1") == (Path("/a/b"), "v1")
    assert parse_layout_text("oci:/a/b") == (Path("/a/b"), None)
    assert parse_layout_text("oci:rel/dir:latest") == (Path("rel/dir"), "latest")
    digest = "sha256:" + "a" * 64
    assert parse_layout_text(f"oci:/a@{digest}") == (Path("/a"), digest)
    with pytest.raises(BadInputError):
        parse_layout_text("oci::v1")
    with pytest.raises(BadInputError):
        parse_layout_text("oci:/a:bad tag")


def test_layout_to_layout_copy_single_and_multi_arch(
    settings: Settings,
    oci_image: Callable[..., BuiltImage],
    oci_index: Callable[..., BuiltImage],
    tmp_path: Path,
) -> None:
    for image in (oci_image(), oci_index()):
        dest = f"oci:{tmp_path / 'copy'}:{'multi' if image.children else 'single'}"
        result = push_image(settings, image.oci, dest, sign=False)
        assert result.descriptor.digest == image.digest
    layout = OCILayout(tmp_path / "copy")
    assert sorted(layout.tags()) == ["multi", "single"]
    # the copy reads back and verifies, by tag and by digest
    loc = open_image_location(settings, f"oci:{tmp_path / 'copy'}:multi")
    assert fetch_image(loc, expected_digest=None).media_type.endswith("index.v1+json")
    # retagging in place replaces the entry, not duplicates it
    push_image(
        settings, f"oci:{tmp_path / 'copy'}:single", f"oci:{tmp_path / 'copy'}:multi", sign=False
    )
    assert sorted(layout.tags()) == ["multi", "single"]


def test_tampered_layout_is_refused(
    settings: Settings, oci_image: Callable[..., BuiltImage], tmp_path: Path
) -> None:
    image = oci_image()
    layer = image.layout / "blobs" / "sha256" / image.blobs[0][7:]
    data = bytearray(layer.read_bytes())
    data[0] ^= 0xFF
    layer.write_bytes(bytes(data))
    src = open_image_location(settings, image.oci)
    with pytest.raises(DigestMismatchError, match="does not match") as info:
        fetch_image(src, expected_digest=image.digest)
    assert "modified on disk" in info.value.one_line()
    dest = open_image_location(settings, f"oci:{tmp_path / 'out'}:v1")
    with pytest.raises(DigestMismatchError):
        copy_image(src, dest)
    # nothing was tagged at the destination
    assert (
        not (tmp_path / "out" / "index.json").exists() or OCILayout(tmp_path / "out").tags() == []
    )


def test_layout_errors(
    settings: Settings, oci_image: Callable[..., BuiltImage], tmp_path: Path
) -> None:
    image = oci_image()
    with pytest.raises(NotFoundError, match="no tag 'v9'"):
        open_image_location(settings, f"oci:{image.layout}:v9").get_manifest(None)
    with pytest.raises(BadInputError, match="not an OCI image layout"):
        open_image_location(settings, f"oci:{tmp_path}:v1").get_manifest(None)
    with pytest.raises(DigestMismatchError, match="expected"):
        open_image_location(settings, image.oci).get_manifest(
            None, expected_digest="sha256:" + "0" * 64
        )


@pytest.mark.registry
def test_skopeo_written_layout_is_readable(
    settings: Settings,
    registry: Registry,
    oci_index: Callable[..., BuiltImage],
    repo_name: str,
    tmp_path: Path,
) -> None:
    image = oci_index()
    skopeo_copy(
        f"oci:{image.layout}:v1",
        f"docker://{registry.ref(repo_name)}",
    )
    skopeo_copy(f"docker://{registry.ref(repo_name)}", f"oci:{tmp_path / 'sk'}:v1")
    src = open_image_location(settings, f"oci:{tmp_path / 'sk'}:v1")
    dest = open_image_location(settings, registry.ref(repo_name, "again"))
    pushed = copy_image(src, dest)
    assert pushed.size > 0
    assert fetch_image(dest, expected_digest=pushed.digest).digest == pushed.digest
