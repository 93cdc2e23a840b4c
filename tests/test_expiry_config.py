"""Metadata expiry is configurable (SERVIN_TRUST_EXPIRY) and Notary's defaults otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trustkit.cli import main
from trustkit.collections.model import DEFAULT_EXPIRIES, Expiries, parse_expiries
from trustkit.config import Settings
from trustkit.errors import BadInputError
from trustkit.stores import escape_gun

REPO = "localhost:5000/expiry/app"
DIGEST = "sha256:" + "c" * 64


def test_defaults_are_notarys() -> None:
    assert DEFAULT_EXPIRIES.root == timedelta(days=3650)
    assert DEFAULT_EXPIRIES.targets == DEFAULT_EXPIRIES.snapshot == timedelta(days=3 * 365)
    assert DEFAULT_EXPIRIES.timestamp == timedelta(days=14)


def test_parse_expiries() -> None:
    got = parse_expiries("timestamp=7d, snapshot=1y,targets=2w,root=5y,delegation=36h")
    assert got == Expiries(
        root=timedelta(days=5 * 365),
        targets=timedelta(weeks=2),
        snapshot=timedelta(days=365),
        timestamp=timedelta(days=7),
        delegation=timedelta(hours=36),
    )
    assert parse_expiries("timestamp=2d").root == DEFAULT_EXPIRIES.root  # others untouched


@pytest.mark.parametrize(
    "spec", ["timestamp", "tiemstamp=7d", "timestamp=7", "timestamp=-1d", "timestamp=0d",
             "timestamp=7m", "timestamp=30m"],
)  # fmt: skip
def test_bad_specs_are_bad_input(spec: str) -> None:
    with pytest.raises(BadInputError) as err:
        parse_expiries(spec)
    assert "SERVIN_TRUST_EXPIRY" in str(err.value)


def _published_expiry(trust_dir: Path, role: str) -> datetime:
    directory = trust_dir / "server" / escape_gun(REPO)
    head = json.loads((directory / "current.json").read_text())
    name = "timestamp" if role == "timestamp" else role
    version = head["timestamp"] if role == "timestamp" else None
    path = directory / f"{version}.{name}.json" if version else directory / f"{name}.json"
    if not path.exists():  # versioned roles: the newest version on disk
        path = max(directory.glob(f"*.{name}.json"), key=lambda p: int(p.name.split(".")[0]))
    expires = json.loads(path.read_text())["signed"]["expires"]
    return datetime.fromisoformat(expires.replace("Z", "+00:00"))


def test_the_cli_honours_the_environment(
    passphrase_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVIN_TRUST_EXPIRY", "timestamp=2h,snapshot=3d")
    with pytest.raises(SystemExit) as exited:
        main(["trust", "sign", f"{REPO}:v1", "--digest", DIGEST, "--size", "10"])
    first = capsys.readouterr()
    assert exited.value.code == 0, first.err
    now = datetime.now(UTC)
    for role, lifetime in (("timestamp", timedelta(hours=2)), ("snapshot", timedelta(days=3))):
        assert abs(_published_expiry(passphrase_env, role) - (now + lifetime)) < timedelta(
            minutes=2
        )
    # the targets role kept Notary's default (3 years)
    assert _published_expiry(passphrase_env, "targets") - now > timedelta(days=1000)
    monkeypatch.setenv("SERVIN_TRUST_EXPIRY", "timestamp=soon")
    with pytest.raises(SystemExit) as exited:
        main(["trust", "sign", f"{REPO}:v2", "--digest", DIGEST, "--size", "10"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trustkit:")]
    assert exited.value.code == 2 and len(errors) == 1 and "SERVIN_TRUST_EXPIRY" in errors[0]


def test_settings_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVIN_TRUST_EXPIRY", "timestamp=1d")
    assert Settings.from_env().trust_expiry == "timestamp=1d"
