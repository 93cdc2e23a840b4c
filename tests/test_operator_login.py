"""Login like docker (issue 15): credential helpers over the docker-credential-* protocol, a
pass-style store, identity (refresh) tokens, no prompt without a terminal, and a warning when
the password is stored unencrypted."""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixtures.registry import Registry

from trustkit.cli import cli
from trustkit.config import Settings
from trustkit.registry.credentials import Credentials, lookup_credentials

#: a docker-credential-* helper keeping one JSON file per server URL (the protocol: store reads
#: {ServerURL, Username, Secret} on stdin; get reads the URL and prints {Username, Secret};
#: erase reads the URL; "credentials not found" on stdout with exit 1 when absent)
HELPER = """#!{python}
import base64, json, os, sys
root = os.environ["{var}"]
action, data = sys.argv[1], sys.stdin.read().strip()
def path(url):
    return os.path.join(root, {subdir!r}, base64.urlsafe_b64encode(url.encode()).decode())
if action == "store":
    doc = json.loads(data)
    os.makedirs(path(doc["ServerURL"]), exist_ok=True)
    with open(os.path.join(path(doc["ServerURL"]), doc["Username"]), "w") as f:
        f.write(doc["Secret"])
elif action in ("get", "erase"):
    where = path(data)
    if not os.path.isdir(where) or not os.listdir(where):
        print("credentials not found in native keychain"); sys.exit(1)
    user = os.listdir(where)[0]
    if action == "get":
        with open(os.path.join(where, user)) as f:
            print(json.dumps({{"ServerURL": data, "Username": user, "Secret": f.read()}}))
    else:
        os.remove(os.path.join(where, user)); os.rmdir(where)
else:
    sys.exit(2)
"""


def _install_helper(bin_dir: Path, name: str, var: str, subdir: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(HELPER.format(python=sys.executable, var=var, subdir=subdir))
    script.chmod(0o755)


@pytest.fixture
def helper_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Path:
    bin_dir = tmp_path / "bin"
    _install_helper(bin_dir, "testhelper", "TESTHELPER_DIR", "")
    # pass's layout: docker-credential-pass keeps docker-credential-helpers/<b64 url>/<user>
    _install_helper(bin_dir, "pass", "PASSWORD_STORE_DIR", "docker-credential-helpers")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TESTHELPER_DIR", str(tmp_path / "helper-store"))
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(tmp_path / "password-store"))
    monkeypatch.setenv("SERVIN_CONFIG", str(settings.effective_config_dir))
    return tmp_path


@pytest.mark.registry
@pytest.mark.parametrize(
    ("option", "store_dir"),
    [(["--credential-helper", "testhelper"], "helper-store"), (["--password-store", "pass"], "")],
    ids=["credential-helper", "password-store-pass"],
)
def test_login_through_a_credential_helper(
    option: list[str],
    store_dir: str,
    basic_registry: Registry,
    settings: Settings,
    helper_env: Path,
) -> None:
    reg = basic_registry
    runner = CliRunner()
    done = runner.invoke(
        cli,
        ["login", *option, "-u", reg.username or "", "--password-stdin", reg.host],
        input=f"{reg.password}\n",
    )
    assert done.exit_code == 0, done.output
    assert "Login Succeeded" in done.output and "unencrypted" not in done.output
    doc = json.loads(settings.credentials_file.read_text())
    helper = option[1]
    assert doc["credHelpers"] == {reg.host: helper}
    assert reg.password not in settings.credentials_file.read_text()
    where = helper_env / (store_dir or "password-store/docker-credential-helpers")
    url_dir = where / base64.urlsafe_b64encode(reg.host.encode()).decode()
    assert (url_dir / (reg.username or "")).read_text() == reg.password
    # used on the next request: the helper answers get
    assert lookup_credentials(settings, reg.host) == Credentials(
        reg.username or "", reg.password or ""
    )
    out = runner.invoke(cli, ["logout", reg.host])
    assert out.exit_code == 0 and "Removed" in out.output
    assert not url_dir.exists()
    assert lookup_credentials(settings, reg.host) is None


@pytest.mark.registry
def test_plain_login_warns_the_password_is_unencrypted(
    basic_registry: Registry, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVIN_CONFIG", str(settings.effective_config_dir))
    reg = basic_registry
    done = CliRunner().invoke(
        cli,
        ["login", "-u", reg.username or "", "--password-stdin", reg.host],
        input=f"{reg.password}\n",
    )
    assert done.exit_code == 0, done.output
    assert f"stored unencrypted in {settings.credentials_file}" in done.output


def test_login_without_a_terminal_is_one_line_and_exit_2(
    settings: Settings, tmp_path: Path
) -> None:
    """As a script would run it: stdin is a pipe at end of input, no --password-stdin."""
    env = {**os.environ, "SERVIN_CONFIG": str(settings.effective_config_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "trustkit", "login", "-u", "me", "127.0.0.1:1"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--password-stdin" in done.stderr
    assert "GetPassWarning" not in done.stderr and "Traceback" not in done.stderr
    assert not settings.credentials_file.exists()


class _TokenRegistry:
    """A registry that accepts only Bearer tokens from its token endpoint, which grants them for
    one OAuth2 refresh token (POST grant_type=refresh_token), as ACR and Harbor OIDC do."""

    def __init__(self, refresh_token: str) -> None:
        self.refresh_token = refresh_token
        self.grants: list[dict[str, list[str]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("Authorization") == "Bearer granted-access":
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                self.send_response(401)
                realm = f"http://127.0.0.1:{outer.port}/token"
                self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="reg"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                outer.grants.append(form)
                ok = form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [
                    outer.refresh_token
                ]
                body = json.dumps({"access_token": "granted-access", "expires_in": 300})
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", str(len(body) if ok else 0))
                self.end_headers()
                if ok:
                    self.wfile.write(body.encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def token_only_registry() -> Iterator[_TokenRegistry]:
    reg = _TokenRegistry("refresh-me-0123")
    yield reg
    reg.server.shutdown()
    reg.server.server_close()


def test_an_identitytoken_entry_is_used(
    settings: Settings, token_only_registry: _TokenRegistry
) -> None:
    from trustkit.services import Services

    host = f"127.0.0.1:{token_only_registry.port}"
    path = settings.credentials_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {host: {"identitytoken": "refresh-me-0123"}}}))
    creds = lookup_credentials(settings, host)
    assert creds is not None and creds.identity_token == "refresh-me-0123"
    services = Services(settings)
    try:
        services.registries.client(host).ping()  # 401, refresh-token grant, then 200
    finally:
        services.close()
    assert token_only_registry.grants and token_only_registry.grants[0]["grant_type"] == [
        "refresh_token"
    ]
    # a wrong token is refused by the token server: authentication fails, nothing passes
    path.write_text(json.dumps({"auths": {host: {"identitytoken": "stolen"}}}))
    services = Services(settings)
    try:
        from trustkit.errors import AuthenticationError

        with pytest.raises(AuthenticationError):
            services.registries.client(host).ping()
    finally:
        services.close()
