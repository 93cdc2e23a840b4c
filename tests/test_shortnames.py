"""Short-name resolution by the registries configuration (unqualified_search_registries and
short_name_mode), through the real config file and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustkit.cli import main
from trustkit.config import Settings
from trustkit.errors import BadInputError
from trustkit.refs import ImageRef, parse
from trustkit.registry.config import RegistriesConfig
from trustkit.registry.shortnames import is_short_name, qualify, qualify_for


def config(search: list[str], mode: str = "enforcing") -> RegistriesConfig:
    return RegistriesConfig(unqualified_search_registries=tuple(search), short_name_mode=mode)


def resolve(text: str, cfg: RegistriesConfig) -> ImageRef:
    return parse(qualify(text, cfg))


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("alpine", True),
        ("team/app:v1", True),
        ("alpine@sha256:" + "a" * 64, True),
        ("docker.io/library/alpine", False),
        ("registry.company.com/app", False),
        ("localhost/app", False),
        ("localhost:5000/app", False),
        ("Foo/bar", False),  # Docker reads an upper-case first component as a registry
    ],
)
def test_is_short_name(text: str, short: bool) -> None:
    assert is_short_name(text) is short


def test_default_is_dockers_rule() -> None:
    for mode in ("enforcing", "permissive", "disabled"):
        assert str(resolve("alpine", config(["docker.io"], mode))) == (
            "docker.io/library/alpine:latest"
        )


def test_single_search_registry_qualifies_short_names() -> None:
    cfg = config(["registry.company.com"])
    assert str(resolve("app:v1", cfg)) == "registry.company.com/app:v1"
    assert str(resolve("team/app", cfg)) == "registry.company.com/team/app:latest"
    # qualified names are never touched
    assert str(resolve("docker.io/library/alpine:3", cfg)) == "docker.io/library/alpine:3"


def test_enforcing_refuses_an_ambiguous_short_name() -> None:
    with pytest.raises(BadInputError) as err:
        resolve("alpine", config(["docker.io", "registry.company.com"]))
    message = err.value.one_line()
    assert "ambiguous" in message and "docker.io/library/alpine" in message
    assert "registry.company.com/alpine" in message and "fully qualified" in message


def test_permissive_takes_the_first_and_disabled_is_docker() -> None:
    search = ["registry.company.com", "docker.io"]
    assert str(resolve("alpine", config(search, "permissive"))) == (
        "registry.company.com/alpine:latest"
    )
    assert str(resolve("alpine", config(search, "disabled"))) == "docker.io/library/alpine:latest"


@given(st.from_regex(r"\A[a-z0-9]{1,10}(/[a-z0-9]{1,10})?(:[a-z0-9]{1,8})?\Z"))
def test_resolution_is_idempotent(text: str) -> None:
    cfg = config(["registry.company.com"])
    once = resolve(text, cfg)
    assert resolve(str(once), cfg) == once


def test_settings_read_the_registries_file(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "registries.json"
    path.write_text(
        json.dumps(
            {
                "unqualified_search_registries": ["docker.io", "registry.company.com"],
                "short_name_mode": "enforcing",
            }
        )
    )
    configured = settings.with_changes(registries_config=path)
    with pytest.raises(BadInputError, match="ambiguous"):
        qualify_for(configured, "alpine")
    assert qualify_for(configured, "localhost:5000/app") == "localhost:5000/app"
    # a repository stays a repository: no tag is added
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"unqualified_search_registries": ["registry.company.com"]}))
    assert qualify_for(settings.with_changes(registries_config=single), "team/app") == (
        "registry.company.com/team/app"
    )


def test_cli_refuses_an_ambiguous_short_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "registries.json"
    path.write_text(json.dumps({"unqualified_search_registries": ["docker.io", "quay.io"]}))
    monkeypatch.setenv("SERVIN_REGISTRIES_CONFIG", str(path))
    monkeypatch.setenv("SERVIN_TRUST_DIR", str(tmp_path / "trust"))
    for argv in (["pull", "alpine"], ["gate", "alpine"], ["trust", "verify", "alpine:3"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        err = capsys.readouterr().err
        assert exited.value.code == 2, argv
        assert "ambiguous" in err and err.count("\n") == 1


def test_hooks_qualify_short_names_too(settings: Settings, tmp_path: Path) -> None:
    from trustkit.hooks import handle

    path = tmp_path / "registries.json"
    path.write_text(json.dumps({"unqualified_search_registries": ["docker.io", "quay.io"]}))
    configured = settings.with_changes(registries_config=path)
    code, answer = handle(configured, "pre-pull", b'{"operation": "pull", "reference": "alpine"}')
    assert code == 2 and "ambiguous" in answer["error"]


def test_oci_layouts_are_not_short_names() -> None:
    assert not is_short_name("oci:layout:v1")
    assert qualify("oci:layout:v1", config(["registry.company.com"])) == "oci:layout:v1"
