"""Push signs, pull verifies: content trust over real registries (library and CLI)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.base import REPO_PASS, ROOT_PASS
from fixtures.registry import BuiltImage, Registry, TamperingProxy, skopeo_copy, use_registry

from trustkit.cli import cli, main
from trustkit.collections import revoke, sign_tag
from trustkit.config import Settings
from trustkit.errors import DigestMismatchError, NotSignedError, TagMovedError, UntrustedError
from trustkit.pipeline.flows import pull_image, push_image
from trustkit.refs import parse
from trustkit.registry import OCILayout

pytestmark = pytest.mark.registry
UNREACHABLE = "127.0.0.1:1"


@pytest.mark.parametrize("kind", ["registry", "basic_registry", "token_registry", "tls_registry"])
@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi-arch"])
def test_signed_push_then_verified_pull(
    kind: str,
    multi: bool,
    request: pytest.FixtureRequest,
    settings: Settings,
    oci_image: Callable[..., BuiltImage],
    oci_index: Callable[..., BuiltImage],
    repo_name: str,
    tmp_path: Path,
) -> None:
    reg: Registry = request.getfixturevalue(kind)
    use_registry(settings, reg)
    image = oci_index() if multi else oci_image()
    dest = reg.ref(f"{repo_name}-{kind}")
    pushed = push_image(settings, image.oci, dest, sign=True)
    assert pushed.descriptor.digest == image.digest and pushed.signed_roles
    pulled = pull_image(settings, dest, dest=f"oci:{tmp_path / 'out'}", verify=True)
    assert pulled.trusted is not None and pulled.trusted.digest == image.digest
    assert pulled.descriptor.digest == image.digest
    layout = OCILayout(tmp_path / "out")
    assert layout.tags() == ["v1"]
    assert all(layout.blob_exists(b) for b in [*image.blobs, *image.children])


def test_tag_overwritten_after_signing_is_refused(
    settings: Settings, registry: Registry, oci_image: Callable[..., BuiltImage], repo_name: str
) -> None:
    v1, other = oci_image(name="v1"), oci_image(name="other")
    dest = registry.ref(repo_name)
    push_image(settings, v1.oci, dest, sign=True)
    skopeo_copy(f"oci:{other.layout}:v1", f"docker://{dest}")
    with pytest.raises(TagMovedError) as info:
        pull_image(settings, dest, verify=True)
    message = info.value.one_line()
    assert "overwritten without being signed" in message
    assert f"@{v1.digest}" in message and "trustkit trust sign" in message
    assert info.value.exit_code == 1
    # by digest, the signed image is still there and verifies
    assert pull_image(settings, f"{dest}@{v1.digest}", verify=True).descriptor.digest == v1.digest


def test_registry_serving_other_bytes_for_a_signed_digest_is_refused(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    tampering_proxy: Callable[..., TamperingProxy],
) -> None:
    image = oci_image()
    push_image(settings, image.oci, registry.ref(repo_name), sign=False)
    proxy = tampering_proxy(registry.url, lambda m, p, body: body[::-1] if "/blobs/" in p else None)
    through_proxy = parse(f"{proxy.host}/{repo_name}:v1")
    sign_tag(settings, through_proxy, digest=image.digest, size=image.size)
    with pytest.raises(DigestMismatchError) as info:
        pull_image(settings, through_proxy, verify=True)
    assert "served other bytes" in info.value.one_line()


@pytest.mark.parametrize("honest", [True, False], ids=["honest-mirror", "lying-mirror"])
def test_pull_through_a_mirror(
    honest: bool,
    settings: Settings,
    registry: Registry,
    oci_index: Callable[..., BuiltImage],
    repo_name: str,
    tampering_proxy: Callable[..., TamperingProxy],
) -> None:
    image = oci_index()
    push_image(settings, image.oci, registry.ref(repo_name), sign=False)
    mirror = registry.host
    if not honest:
        liar = tampering_proxy(
            registry.url, lambda m, p, body: body + b"\n" if "/manifests/" in p else None
        )
        mirror = liar.host
    path = settings.effective_registries_config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"registries": {UNREACHABLE: {"mirrors": [f"http://{mirror}"]}}}))
    origin = parse(f"{UNREACHABLE}/{repo_name}:v1")
    sign_tag(settings, origin, digest=image.digest, size=image.size)
    if honest:
        assert pull_image(settings, origin, verify=True).descriptor.digest == image.digest
    else:
        with pytest.raises(DigestMismatchError) as info:
            pull_image(settings, origin, verify=True)
        assert "no source served" in info.value.one_line()


def test_unsigned_and_revoked_tags_are_refused(
    settings: Settings, registry: Registry, oci_image: Callable[..., BuiltImage], repo_name: str
) -> None:
    image = oci_image()
    never_signed = registry.ref(repo_name + "-unsigned")
    push_image(settings, image.oci, never_signed, sign=False)
    with pytest.raises(NotSignedError) as info:
        pull_image(settings, never_signed, verify=True)
    assert "--disable-content-trust" in info.value.one_line() and info.value.exit_code == 1
    # the same pull with content trust off works
    assert pull_image(settings, never_signed, verify=False).trusted is None

    signed = registry.ref(repo_name)
    push_image(settings, image.oci, signed, sign=True)
    push_image(settings, image.oci, registry.ref(repo_name, "v2"), sign=False)
    with pytest.raises(NotSignedError, match="v2"):
        pull_image(settings, registry.ref(repo_name, "v2"), verify=True)
    revoke(settings, parse(signed))
    with pytest.raises(UntrustedError) as revoked:
        pull_image(settings, signed, verify=True)
    assert "not signed" in str(revoked.value)


def test_pull_by_digest_skips_the_tag_but_checks_the_digest(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    tampering_proxy: Callable[..., TamperingProxy],
) -> None:
    image = oci_image()
    push_image(settings, image.oci, registry.ref(repo_name), sign=False)  # never signed
    by_digest = f"{registry.host}/{repo_name}@{image.digest}"
    result = pull_image(settings, by_digest, verify=True)
    assert result.descriptor.digest == image.digest and result.trusted is None
    proxy = tampering_proxy(
        registry.url, lambda m, p, body: body + b" " if "/manifests/" in p else None
    )
    with pytest.raises(DigestMismatchError):
        pull_image(settings, f"{proxy.host}/{repo_name}@{image.digest}", verify=True)


# --- the CLI ---------------------------------------------------------------------------------
def _env(settings: Settings, *, trust: bool) -> dict[str, str]:
    env = {
        "SERVIN_TRUST_DIR": str(settings.trust_dir),
        "SERVIN_CONFIG": str(settings.effective_config_dir),
        "SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE": ROOT_PASS,
        "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE": REPO_PASS,
    }
    if trust:
        env["SERVIN_CONTENT_TRUST"] = "1"
    return env


def test_cli_push_and_pull(
    settings: Settings,
    basic_registry: Registry,
    oci_index: Callable[..., BuiltImage],
    tmp_path: Path,
) -> None:
    use_registry(settings, basic_registry)
    image = oci_index()
    dest = basic_registry.ref("cli/app")
    runner = CliRunner()
    pushed = runner.invoke(cli, ["push", image.oci, dest], env=_env(settings, trust=True))
    assert pushed.exit_code == 0, pushed.output
    assert image.digest in pushed.output and "Signed" in pushed.output
    pulled = runner.invoke(
        cli,
        ["pull", "--json", dest, "--dest", f"oci:{tmp_path / 'o'}"],
        env=_env(settings, trust=True),
    )
    assert pulled.exit_code == 0, pulled.output
    doc = json.loads(pulled.output)
    assert doc["digest"] == image.digest and doc["verified"] is True and doc["signers"] is not None


def test_cli_pull_unsigned_exit_codes(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = oci_image()
    dest = registry.ref(repo_name)
    for key, value in _env(settings, trust=True).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_info:
        main(["push", "--disable-content-trust", image.oci, dest])
    assert exit_info.value.code == 0
    assert f"{image.blobs[0]}: Pushed" in capsys.readouterr().err  # one line per layer
    with pytest.raises(SystemExit) as exit_info:
        main(["pull", dest])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("trustkit: ") and "not signed" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["pull", "--disable-content-trust", dest])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["push", image.oci, "oci:/nonexistent-dir-for-test:v1"])
    assert exit_info.value.code == 2  # content trust cannot sign an OCI layout destination


def test_pull_fetches_exactly_the_digest_the_verdict_judged(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Content trust off, a policy in force: the tag moves between the verdict and the fetch
    (a race, or a registry that answers the second request differently). The pull must deliver
    the content the policy judged, never the tag's new content."""
    from trustkit.pipeline import flows
    from trustkit.services import Services

    judged, swapped = oci_image(name="judged"), oci_image(name="swapped")
    dest = registry.ref(repo_name)
    push_image(settings, judged.oci, dest, sign=False)
    policy = tmp_path / "audit.yaml"
    policy.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: audit\naction: AUDIT\n"
        "rules:\n  severity: CRITICAL\n"
    )
    real_check = flows.check_image

    def check_then_move_the_tag(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        verdict = real_check(*args, **kwargs)  # type: ignore[arg-type]
        skopeo_copy(f"oci:{swapped.layout}:v1", f"docker://{dest}")
        return verdict

    monkeypatch.setattr(flows, "check_image", check_then_move_the_tag)
    verdict, result = flows.pull_checked(
        Services(settings), dest, verify=False, policy_files=[policy]
    )
    assert verdict is not None and verdict.digest == judged.digest
    assert result.descriptor.digest == judged.digest != swapped.digest
