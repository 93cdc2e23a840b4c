"""Start-up of ``trustkit pull --dest oci:...`` (issue 11): a warm pull of a signed tag loads the
registry client and nothing a pull does not use. Checked on real processes against a real
registry, with the trust data where it lives by default (the image's own registry) and in the
local directory."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.base import REPO_PASS, ROOT_PASS
from fixtures.registry import Registry, make_oci_image

from trustkit.config import Settings
from trustkit.pipeline.flows import push_image
from trustkit.registry import OCILayout

pytestmark = pytest.mark.registry

#: runs ``trustkit ARGV`` and prints every loaded module to stderr at exit
PROBE = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: sys.stderr.write("
    "'LOADED=' + json.dumps(sorted(sys.modules)) + '\\n'))\n"
    "import runpy\n"
    "sys.argv = ['trustkit', *{argv!r}]\n"
    "runpy.run_module('trustkit', run_name='__main__')\n"
)

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVIN_")}
    env.update(
        SERVIN_TRUST_DIR=str(settings.trust_dir),
        SERVIN_CONTENT_TRUST="1",
        SERVIN_CONTENT_TRUST_SERVER=settings.trust_server or "registry",
        SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE=ROOT_PASS,
        SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE=REPO_PASS,
        SERVIN_CONFIG=str(settings.effective_config_dir),
    )
    argv = ["pull", ref, "--dest", f"oci:{dest}:v1"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    marker = [line for line in done.stderr.splitlines() if line.startswith("LOADED=")]
    assert marker, done.stderr
    return done.returncode, done.stdout, done.stderr, json.loads(marker[-1][len("LOADED=") :])


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
