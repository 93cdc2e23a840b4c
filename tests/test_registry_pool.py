"""The process's registry pool against a real docker-registry: one client per host, the
registries configuration parsed once, connections kept across images, and per-image code never
closing a pooled client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fixtures.registry import BuiltImage, Registry

from trustkit.config import Settings
from trustkit.pipeline.flows import pull_image, push_image
from trustkit.refs import parse
from trustkit.registry import RegistryLocation, open_image_location, resolve_digest
from trustkit.registry import pool as pool_module
from trustkit.registry.config import load_registries_config
from trustkit.services import Services

pytestmark = pytest.mark.registry


def test_images_on_one_host_share_one_client_and_one_config_parse(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parses: list[Settings] = []

    def counting(settings: Settings) -> Any:
        parses.append(settings)
        return load_registries_config(settings)

    monkeypatch.setattr(pool_module, "load_registries_config", counting)
    image = oci_image()
    with Services(settings) as services:
        refs = [registry.ref(f"{repo_name}-{n}") for n in range(3)]
        for ref in refs:
            push_image(services, image.oci, ref, sign=False)
        connection = services.registries.client(registry.host)._http
        for ref in refs:
            assert resolve_digest(services.registries, parse(ref)).digest == image.digest
            assert pull_image(services, ref, verify=False).descriptor.digest == image.digest
        # one parse of registries.json, one client for the host, one HTTP connection pool
        assert len(parses) == 1
        assert list(services.registries._clients) == [(registry.host, None)]
        client = services.registries.client(registry.host)
        assert connection is not None and client._http is connection
    assert client._http is None  # the process's pool closes its clients, once, at the end


def test_closing_a_location_leaves_the_pooled_client_open(
    settings: Settings, registry: Registry, oci_image: Callable[..., BuiltImage], repo_name: str
) -> None:
    image = oci_image()
    with Services(settings) as services:
        push_image(services, image.oci, registry.ref(repo_name), sign=False)
        first = open_image_location(services.registries, registry.ref(repo_name))
        assert isinstance(first, RegistryLocation)
        first.get_manifest(None)
        first.close()
        assert first.client._http is not None  # still open for the next image
        second = open_image_location(services.registries, registry.ref(repo_name))
        assert isinstance(second, RegistryLocation) and second.client is first.client
        assert second.get_manifest(None).digest == image.digest
        second.close()


def test_a_location_opened_from_bare_settings_closes_what_it_opened(
    settings: Settings, registry: Registry, oci_image: Callable[..., BuiltImage], repo_name: str
) -> None:
    image = oci_image()
    push_image(settings, image.oci, registry.ref(repo_name), sign=False)
    location = open_image_location(settings, registry.ref(repo_name))
    assert isinstance(location, RegistryLocation)
    assert location.get_manifest(None).digest == image.digest
    assert location.client._http is not None
    location.close()
    assert location.client._http is None  # nothing leaks from the transitional form
