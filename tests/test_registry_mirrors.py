"""Mirrors and lying registries: content is accepted only when it hashes to the expected digest."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fixtures.registry import BuiltImage, Registry, TamperingProxy, use_registry

from trustkit.config import Settings
from trustkit.errors import DigestMismatchError
from trustkit.refs import parse
from trustkit.registry import copy_image, fetch_image, open_image_location, resolve_digest

pytestmark = pytest.mark.registry
UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: the origin is down


def _push(settings: Settings, image: BuiltImage, dest: str) -> None:
    src, target = open_image_location(settings, image.oci), open_image_location(settings, dest)
    copy_image(src, target)
    src.close()
    target.close()


def _mirrors(settings: Settings, origin: str, *mirrors: str) -> None:
    path = settings.effective_registries_config
    path.parent.mkdir(parents=True, exist_ok=True)
    import json

    path.write_text(json.dumps({"registries": {origin: {"mirrors": list(mirrors)}}}))


def _pull(settings: Settings, ref: str, digest: str) -> str:
    src = open_image_location(settings, ref)
    try:
        return fetch_image(src, expected_digest=digest).digest
    finally:
        src.close()


def _index_rewrite(method: str, path: str, body: bytes) -> bytes | None:
    return body + b" " if "/manifests/" in path else None


def test_pull_through_a_mirror_when_the_origin_is_down(
    settings: Settings, registry: Registry, oci_index: Callable[..., BuiltImage], repo_name: str
) -> None:
    image = oci_index()
    _push(settings, image, registry.ref(repo_name))
    _mirrors(settings, UNREACHABLE, f"http://{registry.host}")
    assert _pull(settings, f"{UNREACHABLE}/{repo_name}:v1", image.digest) == image.digest


def test_mirror_with_a_path_prefix(
    settings: Settings, registry: Registry, oci_image: Callable[..., BuiltImage], repo_name: str
) -> None:
    image = oci_image()
    _push(settings, image, f"{registry.host}/cache/{repo_name}:v1")
    _mirrors(settings, UNREACHABLE, f"{registry.host}/cache")
    assert _pull(settings, f"{UNREACHABLE}/{repo_name}@{image.digest}", image.digest)


def test_lying_mirror_is_refused_when_no_honest_source_is_left(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    tampering_proxy: Callable[..., TamperingProxy],
) -> None:
    image = oci_image()
    _push(settings, image, registry.ref(repo_name))
    proxy = tampering_proxy(registry.url, _index_rewrite)
    _mirrors(settings, UNREACHABLE, f"http://{proxy.host}")
    with pytest.raises(DigestMismatchError) as info:
        _pull(settings, f"{UNREACHABLE}/{repo_name}:v1", image.digest)
    message = info.value.one_line()
    assert "no source served" in message and f"mirror http://{proxy.host}" in message
    assert "fix or remove it" in message
    assert any("/manifests/" in hit for hit in proxy.hits)


def test_lying_mirror_falls_back_to_the_registry(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    tampering_proxy: Callable[..., TamperingProxy],
) -> None:
    image = oci_image()
    _push(settings, image, registry.ref(repo_name))
    proxy = tampering_proxy(
        registry.url, lambda m, p, body: b"\0" * len(body) if "/blobs/" in p else None
    )
    _mirrors(settings, registry.host, f"http://{proxy.host}")
    assert _pull(settings, registry.ref(repo_name), image.digest) == image.digest
    assert any("/blobs/" in hit for hit in proxy.hits)  # the mirror was asked first


def test_registry_serving_other_bytes_is_refused(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    tampering_proxy: Callable[..., TamperingProxy],
) -> None:
    image = oci_image()
    _push(settings, image, registry.ref(repo_name))
    blob_liar = tampering_proxy(
        registry.url, lambda m, p, body: b"\0" * len(body) if "/blobs/" in p else None
    )
    with pytest.raises(DigestMismatchError, match="does not match") as info:
        _pull(settings, f"{blob_liar.host}/{repo_name}:v1", image.digest)
    assert "served other bytes" in info.value.one_line()
    manifest_liar = tampering_proxy(registry.url, _index_rewrite)
    with pytest.raises(DigestMismatchError):
        _pull(settings, f"{manifest_liar.host}/{repo_name}:v1", image.digest)
    # Docker-Content-Digest still claims the old digest; we hash the bytes instead.
    resolved = resolve_digest(settings, parse(f"{manifest_liar.host}/{repo_name}:v1"))
    assert resolved.digest != image.digest


def test_mirrors_do_not_resolve_tags(
    settings: Settings, registry: Registry, oci_image: Callable[..., BuiltImage], repo_name: str
) -> None:
    """Without a trusted digest a tag is resolved by the registry itself, never by a mirror."""
    image = oci_image()
    _push(settings, image, registry.ref(repo_name))
    use_registry(settings, registry)
    _mirrors(settings, UNREACHABLE, f"http://{registry.host}")
    src = open_image_location(settings, f"{UNREACHABLE}/{repo_name}:v1")
    with pytest.raises(Exception, match="unreachable"):
        fetch_image(src, expected_digest=None)
    src.close()
