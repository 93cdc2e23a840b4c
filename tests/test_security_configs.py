"""Security review: configuration and layout files nested past Python's recursion limit are a
clear BadInputError naming the file, never a RecursionError traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trustkit.config import Settings
from trustkit.errors import BadInputError
from trustkit.registry.config import load_registries_config
from trustkit.registry.credentials import lookup_credentials
from trustkit.registry.layout import OCILayout
from trustkit.webhook.config import WebhookConfig

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DEEP_YAML = b"mode: " + b"[" * 20_000 + b"]" * 20_000


def test_nested_registries_json(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "registries.json"
    path.write_bytes(DEEP_JSON)
    with pytest.raises(BadInputError, match="registries configuration"):
        load_registries_config(settings.with_changes(registries_config=path))


def test_nested_credentials_config_json(settings: Settings) -> None:
    path = settings.credentials_file
    path.parent.mkdir(parents=True)
    path.write_bytes(DEEP_JSON)
    with pytest.raises(BadInputError, match="credentials file"):
        lookup_credentials(settings, "registry.example.com")


def test_nested_oci_layout_index(tmp_path: Path) -> None:
    layout = OCILayout(tmp_path / "layout")
    layout.init()
    layout.index_path.write_bytes(DEEP_JSON)
    with pytest.raises(BadInputError, match=r"index\.json"):
        layout.tags()


def test_nested_webhook_config(tmp_path: Path) -> None:
    path = tmp_path / "webhook.yaml"
    path.write_bytes(DEEP_YAML)
    with pytest.raises(BadInputError, match="webhook config"):
        WebhookConfig.load(path)


def test_sane_files_still_load(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "registries.json"
    path.write_text(json.dumps({"registries": {"r.example": {"mirrors": ["m.example"]}}}))
    loaded = load_registries_config(settings.with_changes(registries_config=path))
    assert loaded.for_host("r.example").mirrors == ("m.example",)
