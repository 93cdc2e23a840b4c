"""The CLI with trust data in the registry (the default store): push signs into the image's own
repository, and another machine (its own trust dir, only the registry login shared) pulls,
verifies and inspects. The gate, hooks and webhook run against registry-stored trust through
``pipeline_world`` (tests/fixtures/pipeline.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.base import REPO_PASS, ROOT_PASS
from fixtures.registry import BuiltImage, Registry, use_registry

from trustkit.cli import cli
from trustkit.config import Settings
from trustkit.registry.reserved import is_reserved_tag

pytestmark = pytest.mark.registry


def _env(trust_dir: Path, config_dir: Path) -> dict[str, str | None]:
    return {
        "SERVIN_TRUST_DIR": str(trust_dir),
        "SERVIN_CONFIG": str(config_dir),
        "SERVIN_CONTENT_TRUST": "1",
        "SERVIN_CONTENT_TRUST_SERVER": None,  # unset: the registry is the trust server
        "SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE": ROOT_PASS,
        "SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE": REPO_PASS,
    }


def test_cli_push_pull_verify_inspect_with_registry_stored_trust(
    settings: Settings,
    basic_registry: Registry,
    oci_index: Callable[..., BuiltImage],
    repo_name: str,
    tmp_path: Path,
) -> None:
    use_registry(settings, basic_registry)
    image = oci_index()
    dest = basic_registry.ref(repo_name)
    runner = CliRunner()
    signer = _env(settings.trust_dir, settings.effective_config_dir)
    pushed = runner.invoke(cli, ["push", image.oci, dest], env=signer)
    assert pushed.exit_code == 0, pushed.output
    assert "Signed" in pushed.output
    assert not (settings.trust_dir / "server").exists()  # nothing kept locally

    # another machine: its own trust dir, no keys, the same registry login
    reader = _env(tmp_path / "reader-trust", settings.effective_config_dir)
    pulled = runner.invoke(
        cli, ["pull", "--json", dest, "--dest", f"oci:{tmp_path / 'o'}"], env=reader
    )
    assert pulled.exit_code == 0, pulled.output
    doc = json.loads(pulled.output)
    assert doc["digest"] == image.digest and doc["verified"] is True
    verified = runner.invoke(cli, ["trust", "verify", dest], env=reader)
    assert verified.exit_code == 0 and verified.output.strip() == image.digest
    inspected = runner.invoke(cli, ["trust", "inspect", dest.rsplit(":", 1)[0]], env=reader)
    assert inspected.exit_code == 0, inspected.output
    assert image.digest.split(":")[1] in inspected.output

    # the trust tags are in the repository, and no tag listing shows them
    from trustkit.registry.pool import RegistryPool

    pool = RegistryPool(settings)
    tags = pool.client(basic_registry.host).list_tags(repo_name)
    assert "trustkit-tuf" in tags
    assert [t for t in tags if not is_reserved_tag(t)] == ["v1"]
    pool.close()
