"""``trustkit config set|get|unset registry.*`` (the servin guide's shapes) edit registries.json
atomically and only ever write a file the loader accepts; daemon.json's ``registry-mirrors``
are Docker Hub's mirrors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustkit.cli import cli
from trustkit.config import Settings
from trustkit.errors import BadInputError
from trustkit.registry.config import load_registries_config


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {"SERVIN_CONFIG": str(settings.effective_config_dir)}


def _invoke(env: dict[str, str], *argv: str) -> str:
    done = CliRunner().invoke(cli, list(argv), env=env)
    assert done.exit_code == 0, done.output
    return done.output


def test_config_set_round_trips_every_guide_key(settings: Settings, env: dict[str, str]) -> None:
    _invoke(env, "config", "set", "registry.default", "docker.io")
    _invoke(env, "config", "set", "registry.private", "registry.company.com")
    _invoke(
        env,
        "config",
        "set",
        "registry.mirrors",
        "https://mirror1.company.com,https://mirror2.company.com",
    )
    _invoke(env, "config", "set", "registry.insecure", "internal-registry.company.com:5000")
    assert _invoke(env, "config", "get", "registry.default").strip() == "docker.io"
    assert _invoke(env, "config", "get", "registry.private").strip() == (
        "internal-registry.company.com:5000,registry.company.com"
    )
    assert _invoke(env, "config", "get", "registry.mirrors").strip() == (
        "https://mirror1.company.com,https://mirror2.company.com"
    )
    assert json.loads(_invoke(env, "config", "get", "-o", "json"))["registry.insecure"] == [
        "internal-registry.company.com:5000"
    ]
    # what the rest of trustkit reads
    config = load_registries_config(settings)
    assert config.for_host("docker.io").mirrors == (
        "https://mirror1.company.com",
        "https://mirror2.company.com",
    )
    assert config.for_host("internal-registry.company.com:5000").tls.insecure is True
    assert config.for_host("registry.company.com").tls.insecure is False
    # a new default goes first; the others stay searchable
    _invoke(env, "config", "set", "registry.default", "registry.company.com")
    assert load_registries_config(settings).unqualified_search_registries == (
        "registry.company.com",
        "docker.io",
    )
    _invoke(env, "config", "unset", "registry.insecure")
    assert (
        not load_registries_config(settings)
        .for_host("internal-registry.company.com:5000")
        .tls.insecure
    )
    _invoke(env, "config", "unset", "registry.mirrors")
    assert load_registries_config(settings).for_host("docker.io").mirrors == ()
    mode = os.stat(settings.effective_registries_config).st_mode & 0o777
    assert mode == 0o644


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("registry.mirrors", "ftp://mirror.company.com"),
        ("registry.mirrors", "mirror.company.com"),
        ("registry.insecure", "host/with/path"),
        ("registry.private", "a b"),
        ("registry.default", ","),
    ],
)
def test_config_set_refuses_bad_values_and_leaves_the_file(
    settings: Settings, env: dict[str, str], key: str, value: str
) -> None:
    _invoke(env, "config", "set", "registry.private", "registry.company.com")
    before = settings.effective_registries_config.read_bytes()
    done = CliRunner().invoke(cli, ["config", "set", key, value], env=env)
    assert isinstance(done.exception, BadInputError) and done.exception.exit_code == 2
    assert settings.effective_registries_config.read_bytes() == before


def test_config_set_never_overwrites_a_malformed_file(
    settings: Settings, env: dict[str, str]
) -> None:
    path = settings.effective_registries_config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"registries": {"x": {"mirrors": "not a list"}}}')
    done = CliRunner().invoke(cli, ["config", "set", "registry.default", "docker.io"], env=env)
    assert isinstance(done.exception, BadInputError)
    assert "not a list" in path.read_text()


def test_daemon_json_registry_mirrors_are_docker_hubs(settings: Settings, tmp_path: Path) -> None:
    daemon = settings.effective_config_dir / "daemon.json"
    daemon.parent.mkdir(parents=True, exist_ok=True)
    daemon.write_text(json.dumps({"registry-mirrors": ["http://mirror.company.com:5000"]}))
    config = load_registries_config(settings)
    assert config.for_host("docker.io").mirrors == ("http://mirror.company.com:5000",)
    assert config.for_host("registry-1.docker.io").mirrors == ("http://mirror.company.com:5000",)
    assert config.for_host("quay.io").mirrors == ()
    daemon.write_text(json.dumps({"registry-mirrors": "http://one"}))
    with pytest.raises(BadInputError, match=r"daemon\.json"):
        load_registries_config(settings)
