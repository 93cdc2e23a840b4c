"""``trustkit login`` / ``logout`` and the credentials file (config.json, credHelpers)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.registry import Registry

from trustkit.cli import cli
from trustkit.config import Settings
from trustkit.registry.credentials import Credentials, lookup_credentials

pytestmark = pytest.mark.registry


def _env(settings: Settings) -> dict[str, str]:
    return {"SERVIN_CONFIG": str(settings.effective_config_dir)}


@pytest.mark.parametrize("kind", ["basic_registry", "token_registry"])
def test_login_verifies_then_stores_0600_and_logout_removes(
    kind: str, request: pytest.FixtureRequest, settings: Settings
) -> None:
    reg: Registry = request.getfixturevalue(kind)
    runner = CliRunner()
    bad = runner.invoke(
        cli,
        ["login", "--username", reg.username or "", "--password-stdin", reg.host],
        input="wrong\n",
        env=_env(settings),
    )
    assert bad.exit_code != 0 and not settings.credentials_file.exists()
    assert isinstance(bad.exception, Exception) and "failed" in str(bad.exception)

    good = runner.invoke(
        cli,
        ["login", "-u", reg.username or "", "--password-stdin", f"https://{reg.host}/v1/"],
        input=f"{reg.password}\n",
        env=_env(settings),
    )
    assert good.exit_code == 0, good.output
    assert "Login Succeeded" in good.output
    path = settings.credentials_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert reg.host in json.loads(path.read_text())["auths"]
    assert lookup_credentials(settings, reg.host) == Credentials(
        reg.username or "", reg.password or ""
    )
    out = runner.invoke(cli, ["logout", reg.host], env=_env(settings))
    assert out.exit_code == 0 and "Removed" in out.output
    assert lookup_credentials(settings, reg.host) is None
    again = runner.invoke(cli, ["logout", reg.host], env=_env(settings))
    assert "Not logged in" in again.output


def test_credential_helpers(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """credHelpers runs docker-credential-<name> get with the registry on stdin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-testhelper"
    helper.write_text(
        "#!/bin/sh\nread host\n"
        'echo "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"helper-user\\",'
        '\\"Secret\\":\\"s3cret-for-$host\\"}"\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    settings.credentials_file.parent.mkdir(parents=True, exist_ok=True)
    settings.credentials_file.write_text(
        json.dumps(
            {
                "auths": {"other.example": {"auth": "dXNlcjpwYXNz"}},
                "credHelpers": {"reg.example:5000": "testhelper"},
            }
        )
    )
    assert lookup_credentials(settings, "reg.example:5000") == Credentials(
        "helper-user", "s3cret-for-reg.example:5000"
    )
    assert lookup_credentials(settings, "other.example") == Credentials("user", "pass")
    assert lookup_credentials(settings, "nobody.example") is None


def test_malformed_credentials_file(settings: Settings) -> None:
    from trustkit.errors import BadInputError

    settings.credentials_file.parent.mkdir(parents=True, exist_ok=True)
    settings.credentials_file.write_text('{"auths": {"r.example": {"auth": "%%%"}}}')
    with pytest.raises(BadInputError, match=r"bad 'auth' for r\.example"):
        lookup_credentials(settings, "r.example")
