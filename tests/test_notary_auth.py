"""notary-server behind the registry's token auth (distribution's ES256 JWTs): trustkit follows
the server's challenge to the token server with the credentials configured for the server's
host, as docker does; without them it is one line naming the server, exit 3."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.notary import NotaryCLI, _wait_healthy, free_port, needs_notary
from fixtures.registry import TokenIssuer

from trustkit.cli import main

pytestmark = [pytest.mark.peer, needs_notary]

DIGEST = hashlib.sha256(b"token auth v1").hexdigest()
GUN = "localhost:5000/auth/app"


class OpenableIssuer(TokenIssuer):
    """Grants anyone everything while ``open`` (the notary CLI sets the collection up
    anonymously), then only the configured users."""

    open = True

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        if self.open and "Authorization" not in handler.headers:
            handler.headers["Authorization"] = "Basic " + _basic("setup", "setup")
            self.users.setdefault("setup", "setup")
        super()._handle(handler)


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def token_notary(tmp_path: Path) -> Iterator[tuple[str, OpenableIssuer]]:
    issuer = OpenableIssuer(tmp_path, {"alice": "alice-pw"})
    port = free_port()
    config = {
        "server": {"http_addr": f"127.0.0.1:{port}"},
        "trust_service": {"type": "local"},
        "storage": {"backend": "memory"},
        "logging": {"level": "error"},
        "auth": {
            "type": "token",
            "options": {
                "realm": issuer.realm,
                "service": issuer.service,
                "issuer": issuer.issuer,
                "rootcertbundle": str(issuer.root_bundle),
            },
        },
    }
    (tmp_path / "server.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        ["notary-server", "-config", str(tmp_path / "server.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url)
        yield url, issuer
    finally:
        process.terminate()
        process.wait(timeout=10)
        issuer.close()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def test_token_auth_follows_the_challenge_with_the_hosts_credentials(
    token_notary: tuple[str, OpenableIssuer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, issuer = token_notary
    cli = NotaryCLI(url, tmp_path / "notary")
    cli.run("init", "-p", GUN)
    cli.run("addhash", "-p", GUN, "v1", "13", "--sha256", DIGEST)
    issuer.open = False
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", url)

    # no credentials: the token grants nothing, the server refuses; one line, exit 3
    code, _, err = _run(capsys, "trust", "verify", f"{GUN}:v1")
    assert code == 3 and err.count("\n") == 1
    assert "notary-server" in err and url.removeprefix("http://") in err

    host = url.removeprefix("http://")
    registries = tmp_path / "registries.json"
    auth = {"username": "alice", "password": "alice-pw"}
    registries.write_text(json.dumps({"registries": {host: {"auth": auth}}}))
    monkeypatch.setenv("SERVIN_REGISTRIES_CONFIG", str(registries))
    issuer.requests.clear()
    code, out, err = _run(capsys, "trust", "verify", f"{GUN}:v1")
    assert (code, out.strip()) == (0, f"sha256:{DIGEST}"), err
    assert {"user": "alice", "scopes": [f"repository:{GUN}:pull"]} in issuer.requests


def test_creating_and_rotating_follow_token_auth(
    token_notary: tuple[str, OpenableIssuer],
    tmp_path: Path,
    passphrase_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Creating a collection (the server's keys, the first publish) and rotating the server's
    timestamp key (``POST timestamp.key``, scope ``*``) ask the token server for what notary
    asks, with the host's credentials."""
    url, issuer = token_notary
    issuer.open = False
    gun = "localhost:5000/auth/created"
    host = url.removeprefix("http://")
    registries = tmp_path / "registries.json"
    auth = {"username": "alice", "password": "alice-pw"}
    registries.write_text(json.dumps({"registries": {host: {"auth": auth}}}))
    monkeypatch.setenv("SERVIN_REGISTRIES_CONFIG", str(registries))
    monkeypatch.setenv("SERVIN_CONTENT_TRUST_SERVER", url)
    monkeypatch.setenv("SERVIN_SIGNATURE_FORMATS", "tuf")
    code, _, err = _run(capsys, "trust", "sign", f"{gun}:v1", "--digest", f"sha256:{DIGEST}",
                        "--size", "13")  # fmt: skip
    assert code == 0, err
    assert {"user": "alice", "scopes": [f"repository:{gun}:push,pull"]} in issuer.requests
    code, _, err = _run(capsys, "trust", "key", "rotate", gun, "--role", "timestamp")
    assert code == 0, err
    assert {"user": "alice", "scopes": [f"repository:{gun}:*"]} in issuer.requests
    issuer.open = True  # the notary CLI reads anonymously
    cli = NotaryCLI(url, tmp_path / "notary")
    assert DIGEST in cli.run("lookup", gun, "v1")
