"""Authentication and TLS against real registries: htpasswd Basic, token auth, self-signed TLS."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fixtures.registry import BuiltImage, Registry, use_registry

from trustkit.config import Settings
from trustkit.errors import AuthenticationError, BadInputError, UntrustedError
from trustkit.registry import (
    RegistryClient,
    copy_image,
    fetch_image,
    open_image_location,
)
from trustkit.registry.client import TLSVerificationError
from trustkit.registry.credentials import Credentials, lookup_credentials, store_credentials

pytestmark = pytest.mark.registry


def _roundtrip(settings: Settings, image: BuiltImage, ref: str) -> str:
    src = open_image_location(settings, image.oci)
    dest = open_image_location(settings, ref)
    try:
        pushed = copy_image(src, dest)
    finally:
        src.close()
        dest.close()
    back = open_image_location(settings, ref)
    try:
        return fetch_image(back, expected_digest=pushed.digest).digest
    finally:
        back.close()


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry", "tls_registry"])
def test_push_and_pull_through_each_setup(
    kind: str,
    request: pytest.FixtureRequest,
    settings: Settings,
    oci_image: Callable[..., BuiltImage],
    oci_index: Callable[..., BuiltImage],
) -> None:
    reg: Registry = request.getfixturevalue(kind)
    use_registry(settings, reg)
    single, multi = oci_image(), oci_index()
    assert _roundtrip(settings, single, reg.ref("auth/single")) == single.digest
    assert _roundtrip(settings, multi, reg.ref("auth/multi")) == multi.digest


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry"])
def test_wrong_credentials_are_refused_with_a_login_hint(
    kind: str, request: pytest.FixtureRequest, settings: Settings
) -> None:
    reg: Registry = request.getfixturevalue(kind)
    use_registry(settings, reg, login=False)
    store_credentials(settings, reg.host, Credentials(reg.username or "", "wrong password"))
    with RegistryClient(settings, reg.host) as client, pytest.raises(AuthenticationError) as info:
        client.get_manifest("auth/single", "v1")
    message = info.value.one_line()
    assert f"authentication to {reg.host} failed" in message
    assert f"trustkit login {reg.host}" in message


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry"])
def test_no_credentials_says_login_is_required(
    kind: str, request: pytest.FixtureRequest, settings: Settings
) -> None:
    reg: Registry = request.getfixturevalue(kind)
    with RegistryClient(settings, reg.host) as client, pytest.raises(AuthenticationError) as info:
        client.list_tags("auth/single")
    assert "is required" in str(info.value) and "trustkit login" in info.value.one_line()


def test_token_is_cached_per_scope(
    settings: Settings, token_registry: Registry, oci_image: Callable[..., BuiltImage]
) -> None:
    use_registry(settings, token_registry)
    assert token_registry.issuer is not None
    before = len(token_registry.issuer.requests)
    image = oci_image(layer_sizes=(100, 200, 300))
    _roundtrip(settings, image, token_registry.ref("auth/cached"))
    asked = token_registry.issuer.requests[before:]
    # one token for push to the repository, one for pulling it back: not one per blob
    assert 1 <= len(asked) <= 3, asked
    assert all(r["user"] == token_registry.username for r in asked)


def test_untrusted_tls_certificate_is_refused(settings: Settings, tls_registry: Registry) -> None:
    with (
        RegistryClient(settings, tls_registry.host) as client,
        pytest.raises(TLSVerificationError) as info,
    ):
        client.ping()
    assert isinstance(info.value, UntrustedError)
    message = info.value.one_line()
    assert "not trusted" in message and "ca_file" in message and "\n" not in message


def test_insecure_registry_skips_verification(settings: Settings, tls_registry: Registry) -> None:
    use_registry(settings, tls_registry)
    doc = json.loads(settings.effective_registries_config.read_text())
    doc["registries"][tls_registry.host]["tls"] = {"insecure": True}
    settings.effective_registries_config.write_text(json.dumps(doc))
    with RegistryClient(settings, tls_registry.host) as client:
        assert client.ping()
        assert client.base_url.startswith("https://")


def test_plain_http_only_for_loopback(settings: Settings, registry: Registry) -> None:
    with RegistryClient(settings, registry.host) as client:
        assert client.base_url == f"http://{registry.host}"
    # "localhost" is loopback too
    port = registry.host.rsplit(":", 1)[1]
    with RegistryClient(settings, f"localhost:{port}") as client:
        assert client.ping()


def test_credentials_from_registries_config_auth(
    settings: Settings, basic_registry: Registry
) -> None:
    use_registry(
        settings,
        basic_registry,
        login=False,
        extra={"auth": {"username": basic_registry.username, "password": basic_registry.password}},
    )
    found = lookup_credentials(
        settings, basic_registry.host, RegistryClient(settings, basic_registry.host).config
    )
    assert found == Credentials(basic_registry.username or "", basic_registry.password or "")
    with RegistryClient(settings, basic_registry.host) as client:
        assert client.ping()


def test_malformed_registries_config_is_a_clear_error(settings: Settings) -> None:
    path = settings.effective_registries_config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"registries": {"example.com": {"tls": {"insecure": "yes"}}}}')
    with pytest.raises(BadInputError, match=r"tls.insecure must be true or false") as info:
        RegistryClient(settings, "example.com")
    assert str(path) in str(info.value)
    path.write_text("{not json")
    with pytest.raises(BadInputError, match="not valid JSON"):
        RegistryClient(settings, "example.com")
