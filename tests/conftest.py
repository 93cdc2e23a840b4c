"""Shared test set-up. Fixture families live in tests/fixtures/<family>.py and are loaded here,
so each part of trustkit keeps its own fixtures (real registry, trust stores, keys...)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = sorted(
    f"fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)

# trustkit refuses policy and key files that others may write; the tests write such files with
# plain open(), so they must not inherit a permissive umask (002) from the shell that runs them
os.umask(0o022)

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """../shared (the project's read-only reference material)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
