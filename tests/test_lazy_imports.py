"""Start-up: commands import only what they use (issue 11). Checked on real processes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from fixtures.processes import LOADED_PROBE, loaded_modules, run_probe, trustkit_env

from trustkit.collections import sign_tag
from trustkit.config import Settings
from trustkit.refs import parse

REPO = "localhost:5000/team/app"
HEAVY = (
    "boto3", "botocore", "pkcs11", "httpx", "rich", "pygments", "cryptography.x509", "urllib3"
)  # fmt: skip


#: what a command that neither scans, evaluates policies nor serves webhooks must not load
NOT_FOR_TRUST = (
    "trustkit.attest", "trustkit.policy", "trustkit.webhook", "trustkit.pipeline",
    "trustkit.model.findings", "trustkit.report_formats", "trustkit.registry.client", "yaml",
)  # fmt: skip
#: what a warm ``trust verify`` answers without (ADR 0017): no TUF, no signatures, no keys;
#: nor the other ``trust`` subcommands, the registries configuration (a qualified reference, no
#: registries.json), the memory store or shutil
NOT_FOR_WARM_VERIFY = (
    *NOT_FOR_TRUST, "tuf", "securesystemslib", "cryptography", "trustkit.collections.engine",
    "trustkit.collections.client", "trustkit.keys", "trustkit.verdict",
    "trustkit.cli.trust_keys", "trustkit.cli.trust_pending", "trustkit.cli.trust_migrate",
    "trustkit.registry.config", "trustkit.registry.pool", "trustkit.stores.memory", "shutil",
)  # fmt: skip


def _among(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (a package counts with its submodules) were loaded."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def _run_all(
    settings: Settings, argv: list[str], stdin: str = ""
) -> tuple[int, str, str, list[str]]:
    """Run ``trustkit ARGV`` as a process: (exit code, stdout, stderr, every module loaded)."""
    done = run_probe(LOADED_PROBE, argv, trustkit_env(settings), stdin)
    return done.returncode, done.stdout, done.stderr, loaded_modules(done)


def _run(settings: Settings, argv: list[str], stdin: str = "") -> tuple[int, str, list[str]]:
    """``_run_all`` with only the HEAVY modules that were loaded."""
    code, out, _, modules = _run_all(settings, argv, stdin)
    return code, out, _among(modules, HEAVY)


def _signed(settings: Settings) -> str:
    digest = "sha256:" + hashlib.sha256(b"v1").hexdigest()
    sign_tag(settings, parse(f"{REPO}:v1"), digest=digest, size=1)
    return digest


def test_trust_verify_imports_no_registry_client_nor_cloud_sdks(settings: Settings) -> None:
    digest = _signed(settings)
    code, out, loaded = _run(settings, ["trust", "verify", f"{REPO}:v1"])
    assert code == 0 and out.strip() == digest
    assert loaded == []  # the local store is read: no httpx, rich, boto3, pkcs11, x509, urllib3


def test_trust_sign_unlocks_keys_without_cloud_sdks(settings: Settings) -> None:
    _signed(settings)
    digest = "sha256:" + hashlib.sha256(b"v2").hexdigest()
    code, _, loaded = _run(
        settings, ["trust", "sign", f"{REPO}:v2", "--digest", digest, "--size", "1"]
    )
    assert code == 0
    assert not {"boto3", "botocore", "pkcs11", "rich", "pygments"} & set(loaded)


def test_hook_pre_pull_imports_no_cloud_sdks(settings: Settings) -> None:
    digest = _signed(settings)
    request = json.dumps({"operation": "pull", "reference": f"{REPO}:v1"})
    code, out, loaded = _run(settings, ["hook", "pre-pull"], stdin=request)
    assert code == 0, out
    assert json.loads(out)["digest"] == digest
    assert not {"boto3", "botocore", "pkcs11", "rich", "pygments"} & set(loaded)


def test_warm_trust_verify_loads_no_tuf_keys_policy_or_scans(settings: Settings) -> None:
    """The second verify of a tag is answered from the client cache (ADR 0017): the first one
    runs python-tuf, the second loads none of it, nor anything a verify does not use."""
    digest = _signed(settings)
    code, out, _, cold = _run_all(settings, ["trust", "verify", f"{REPO}:v1"])
    assert code == 0 and out.strip() == digest
    assert "tuf.api.metadata" in cold  # the full path really ran
    assert _among(cold, NOT_FOR_TRUST) == []
    code, out, _, warm = _run_all(settings, ["trust", "verify", "--json", f"{REPO}:v1"])
    assert code == 0 and json.loads(out)["digest"] == digest
    assert json.loads(out)["signers"] == []  # signed with the repository key: no named signer
    assert _among(warm, NOT_FOR_WARM_VERIFY) == []


def test_trust_sign_loads_no_policy_scans_or_tuf_client(settings: Settings) -> None:
    _signed(settings)
    digest = "sha256:" + hashlib.sha256(b"v3").hexdigest()
    code, _, err, loaded = _run_all(
        settings, ["trust", "sign", f"{REPO}:v3", "--digest", digest, "--size", "1"]
    )
    assert code == 0, err
    assert _among(loaded, NOT_FOR_TRUST) == []
    # signing verifies what it loads itself: python-tuf's client (ngclient) is not needed
    assert _among(loaded, ("tuf.ngclient", "trustkit.collections.client", "rich")) == []
    # a file key needs no online back-ends' module; --digest given: no registries configuration
    unused = ("trustkit.keys.online", "trustkit.cli.trust_keys", "trustkit.registry.config")
    assert _among(loaded, unused) == []


def test_hook_pre_pull_loads_no_webhook_scans_or_registry_client(settings: Settings) -> None:
    digest = _signed(settings)
    request = json.dumps({"operation": "pull", "reference": f"{REPO}:v1"})
    code, out, _, loaded = _run_all(settings, ["hook", "pre-pull"], stdin=request)
    assert code == 0 and json.loads(out)["digest"] == digest
    unused = ("trustkit.webhook", "trustkit.attest", "trustkit.registry.client", "httpx")
    assert _among(loaded, (*unused, "trustkit.report_formats", "starlette", "uvicorn")) == []


def test_online_backends_still_load_when_used() -> None:
    """The deferred SDKs are there the moment an online key needs them."""
    code = (
        "import sys, trustkit, tuf.api.metadata\n"
        "import securesystemslib.signer as s\n"
        "assert 'boto3' not in sys.modules and s._aws_signer.AWS_IMPORT_ERROR\n"
        "from trustkit import _signer_backends\n"
        "_signer_backends.enable()\n"
        "assert s._aws_signer.AWS_IMPORT_ERROR is None, s._aws_signer.AWS_IMPORT_ERROR\n"
        "assert s.SIGNER_FOR_URI_SCHEME['awskms'] is s.AWSSigner is s._aws_signer.AWSSigner\n"
        "assert s.SIGNER_FOR_URI_SCHEME['hsm'] is s.HSMSigner is s._hsm_signer.HSMSigner\n"
        "assert s._hsm_signer.PKCS11_IMPORT_ERROR is None\n"
        "import httpx, rich.console\n"  # rich itself still imports for those who use it
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_tufs_default_fetcher_is_built_on_use() -> None:
    """python-tuf's own modules get a stand-in Urllib3Fetcher; building one imports the real."""
    code = (
        "import sys, trustkit\n"
        "from tuf.ngclient import Updater, Urllib3Fetcher\n"
        "assert 'urllib3' not in sys.modules\n"
        "fetcher = Urllib3Fetcher()\n"
        "import tuf.ngclient, tuf.ngclient.updater, tuf.ngclient.urllib3_fetcher as real\n"
        "assert type(fetcher) is real.Urllib3Fetcher and 'urllib3' in sys.modules\n"
        "assert tuf.ngclient.updater.Urllib3Fetcher is real.Urllib3Fetcher\n"
        "assert tuf.ngclient.Urllib3Fetcher is real.Urllib3Fetcher\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_warm_hook_pre_pull_loads_no_tuf_policy_or_yaml(settings: Settings) -> None:
    """A second pre-pull of the same tag, no policy files: the tag's own evidence comes from the
    client cache (ADR 0017) and the verdict from content trust alone, so python-tuf, the policy
    rules and yaml are never imported."""
    digest = _signed(settings)
    request = json.dumps({"operation": "pull", "reference": f"{REPO}:v1"})
    code, out, _, cold = _run_all(settings, ["hook", "pre-pull"], stdin=request)
    assert code == 0 and json.loads(out)["digest"] == digest
    assert "tuf.api.metadata" in cold  # the full path really ran
    code, out, _, warm = _run_all(settings, ["hook", "pre-pull"], stdin=request)
    assert code == 0 and json.loads(out)["digest"] == digest
    heavy = ("tuf", "securesystemslib", "cryptography", "trustkit.collections.engine")
    assert _among(warm, (*heavy, "trustkit.policy.rules", "trustkit.policy.loader", "yaml")) == []
