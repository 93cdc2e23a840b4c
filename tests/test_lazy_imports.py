"""Start-up: commands import only what they use (issue 11). Checked on real processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from fixtures.base import REPO_PASS, ROOT_PASS

from trustkit.collections import sign_tag
from trustkit.config import Settings
from trustkit.refs import parse

REPO = "localhost:5000/team/app"
HEAVY = (
    "boto3", "botocore", "pkcs11", "httpx", "rich", "pygments", "cryptography.x509", "urllib3"
)  # fmt: skip
PROBE = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: sys.stderr.write('LOADED=' + json.dumps("
    "[m for m in {heavy!r} if m in sys.modules]) + '\\n'))\n"
    "import runpy\n"
    "sys.argv = ['trustkit', *{argv!r}]\n"
    "runpy.run_module('trustkit', run_name='__main__')\n"
)


def _run(settings: Settings, argv: list[str], stdin: str = "") -> tuple[int, str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVIN_")}
    env.update(
        SERVIN_TRUST_DIR=str(settings.trust_dir),
        SERVIN_CONTENT_TRUST="1",
        SERVIN_CONTENT_TRUST_SERVER="local",
        SERVIN_CONTENT_TRUST_ROOT_PASSPHRASE=ROOT_PASS,
        SERVIN_CONTENT_TRUST_REPOSITORY_PASSPHRASE=REPO_PASS,
        SERVIN_CONFIG=str(settings.effective_config_dir),
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, argv=argv)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    marker = [line for line in done.stderr.splitlines() if line.startswith("LOADED=")]
    assert marker, done.stderr
    return done.returncode, done.stdout, json.loads(marker[-1][len("LOADED=") :])


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
