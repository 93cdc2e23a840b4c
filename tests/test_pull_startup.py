"""Start-up of ``trustkit pull --dest oci:...`` (issue 11): a warm pull of a signed tag loads the
registry client and nothing a pull does not use. Checked on real processes against a real
registry, with the trust data where it lives by default (the image's own registry) and in the
local directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fixtures.processes import LOADED_PROBE, loaded_modules, run_probe, trustkit_env
from fixtures.registry import Registry, make_oci_image

from trustkit.config import Settings
from trustkit.pipeline.flows import push_image
from trustkit.registry import OCILayout

pytestmark = pytest.mark.registry

#: what a warm pull into a layout never needs: the TUF engine and key handling (the warm path
#: answers from the client cache, ADR 0017), policy files' parsers, scans, signatures, the
#: webhook, and rich (progress to a pipe is one plain line per layer)
NOT_FOR_WARM_PULL = (
    "tuf", "securesystemslib", "cryptography", "trustkit.collections.engine",
    "trustkit.collections.client", "trustkit.keys", "trustkit.policy.rules",
    "trustkit.policy.loader", "yaml", "jsonschema", "sigstore", "trustkit.attest",
    "trustkit.sources", "trustkit.webhook", "rich", "pygments", "boto3", "pkcs11",
)  # fmt: skip


def _among(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def _pull(settings: Settings, ref: str, dest: Path) -> tuple[int, str, str, list[str]]:
    env = trustkit_env(settings, server=settings.trust_server or "registry")
    done = run_probe(LOADED_PROBE, ["pull", ref, "--dest", f"oci:{dest}:v1"], env)
    return done.returncode, done.stdout, done.stderr, loaded_modules(done)


@pytest.mark.parametrize("store", ["registry", "local"])
def test_a_warm_pull_into_a_layout_loads_only_what_a_pull_uses(
    store: str, settings: Settings, registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(settings, trust_server=store)
    image = make_oci_image(tmp_path / "src", "v1", (300_000, 200_000), seed=repo_name.encode())
    ref = registry.ref(f"{repo_name}-{store}")
    push_image(settings, image.oci, ref, sign=True)

    code, out, err, cold = _pull(settings, ref, tmp_path / "cold")
    assert code == 0, err
    assert "tuf.api.metadata" in cold  # the first pull really ran the full TUF path
    code, out, err, warm = _pull(settings, ref, tmp_path / "warm")
    assert code == 0, err
    assert f"digest: {image.digest}" in out and "Verified" in out
    assert _among(warm, NOT_FOR_WARM_PULL) == []
    assert "trustkit.registry.client" in warm  # the image did come from the registry
    layout = OCILayout(tmp_path / "warm")
    assert layout.tags() == ["v1"]
    assert all(layout.blob_exists(b) for b in image.blobs)
