"""``trustkit policy`` commands through the real CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from trustkit.attest.model import Severity
from trustkit.cli import cli, main
from trustkit.policy import load_policy_file
from trustkit.verdict import Action

BAD = """\
apiVersion: trustkit.dev/v1
kind: ImagePolicy
name: bad
action: BLOCK
rules:
  severity: HIHG
"""


def _main_exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0)


def test_seed_command_creates_the_policy(passphrase_env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["policy", "create", "--severity", "HIGH", "--action", "BLOCK", "vulnerability-policy"]
    )
    assert result.exit_code == 0, result.output
    path = passphrase_env / "policies" / "vulnerability-policy.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    policy = load_policy_file(path)
    assert policy.severity is Severity.HIGH and policy.action is Action.BLOCK
    assert policy.require_scan  # BLOCK default
    assert [g.text for g in policy.scope] == ["**"]


def test_create_refuses_to_overwrite_without_force(passphrase_env: Path) -> None:
    argv = ["policy", "create", "--severity", "HIGH", "p1"]
    assert _main_exit(argv) == 0
    assert _main_exit(argv) == 2
    assert _main_exit([*argv[:-1], "--action", "warn", "--force", "p1"]) == 0
    assert load_policy_file(passphrase_env / "policies" / "p1.yaml").action is Action.WARN


def test_create_with_every_option(passphrase_env: Path) -> None:
    argv = [
        "policy", "create", "--severity", "critical", "--action", "WARN", "strict",
        "--scope", "registry.example.com/prod/**", "--exclude", "registry.example.com/prod/tmp",
        "--ignore-unfixed", "--max-scan-age", "24h", "--require-signed", "--require-scan",
        "--deny", "cve-2021-44228", "--deny", "CVE-2022-22965", "--description", "prod images",
    ]  # fmt: skip
    assert _main_exit(argv) == 0
    policy = load_policy_file(passphrase_env / "policies" / "strict.yaml")
    assert policy.severity is Severity.CRITICAL and policy.ignore_unfixed
    assert policy.action is Action.WARN and policy.require_scan and policy.requires_signed
    assert policy.denylist == ("CVE-2021-44228", "CVE-2022-22965")
    assert policy.max_scan_age is not None and policy.max_scan_age.total_seconds() == 86400
    assert policy.matches("registry.example.com/prod/app:1")
    assert not policy.matches("registry.example.com/prod/tmp:1")


@pytest.mark.parametrize(
    "argv",
    [
        ["policy", "create", "--severity", "HIGH", "Bad/Name"],
        ["policy", "create", "--severity", "HIGH", "--max-scan-age", "soon", "p"],
        ["policy", "create", "--severity", "SEVERE", "p"],
        ["policy", "create", "--scope", "Not An Image", "p"],
        ["policy", "create", "--deny", "not-a-cve!", "p"],
    ],
)
def test_create_rejects_bad_input(passphrase_env: Path, argv: list[str]) -> None:
    assert _main_exit(argv) == 2
    assert not (passphrase_env / "policies" / "p.yaml").exists()


def test_list_show_delete(passphrase_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main_exit(["policy", "create", "--severity", "HIGH", "alpha"]) == 0
    assert _main_exit(["policy", "create", "--action", "AUDIT", "--require-signed", "beta"]) == 0
    capsys.readouterr()
    assert _main_exit(["policy", "list", "--output", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["policies"]
    assert [p["name"] for p in listed] == ["alpha", "beta"]
    assert listed[0]["severity"] == "HIGH" and listed[1]["require_signed"] is True

    assert _main_exit(["policy", "show", "alpha"]) == 0
    assert "severity: HIGH" in capsys.readouterr().out
    assert _main_exit(["policy", "show", "beta", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["policy"]["action"] == "AUDIT"

    assert _main_exit(["policy", "delete", "alpha"]) == 0
    assert not (passphrase_env / "policies" / "alpha.yaml").exists()
    assert _main_exit(["policy", "delete", "alpha"]) == 2
    assert _main_exit(["policy", "show", "alpha"]) == 2


def test_list_flags_an_invalid_file(passphrase_env: Path) -> None:
    (passphrase_env / "policies").mkdir(parents=True)
    (passphrase_env / "policies" / "bad.yaml").write_text(BAD)
    result = CliRunner().invoke(cli, ["policy", "list"])
    assert result.exit_code == 2
    assert "INVALID" in result.output and "bad.yaml:6:13" in result.output


def test_validate_reports_lines_and_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BAD.replace("HIHG", "HIGH"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    runner = CliRunner()
    ok = runner.invoke(cli, ["policy", "validate", str(good)])
    assert ok.exit_code == 0 and "valid (policy bad, BLOCK)" in ok.output
    failed = runner.invoke(cli, ["policy", "validate", str(good), str(bad)])
    assert failed.exit_code == 2
    assert f"{bad}:6:13: rules.severity: 'HIHG' is not one of" in failed.stderr
    missing = runner.invoke(cli, ["policy", "validate", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "not found" in missing.stderr


def test_eval_with_a_malformed_policy_is_an_error_not_an_allow(
    passphrase_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("trustkit.enforce")
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    digest = "sha256:" + "ab" * 32
    assert _main_exit(["policy", "eval", f"alpine@{digest}", "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:6:13" in err


def test_eval_renders_the_pipeline_verdict(
    passphrase_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("trustkit.enforce")
    audit = tmp_path / "audit.yaml"
    audit.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: audit-all\naction: AUDIT\n"
    )
    digest = "sha256:" + "ab" * 32
    argv = ["policy", "eval", f"alpine@{digest}", "--policy", str(audit), "--output", "json"]
    assert _main_exit(argv) == 0
    document = json.loads(capsys.readouterr().out)
    (verdict,) = document["verdicts"]
    assert verdict["allow"] is True and verdict["digest"] == digest
    assert [p["policy"] for p in verdict["policies"]] == ["audit-all"]
    assert _main_exit([*argv[:-2], "--explain"]) == 0
    assert "policy audit-all: ALLOW" in capsys.readouterr().out


def test_eval_blocks_an_unsigned_image_offline(
    passphrase_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("trustkit.enforce")
    signed = tmp_path / "signed.yaml"
    signed.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: must-be-signed\n"
        "action: BLOCK\nrules:\n  require_signed: true\n  require_scan: false\n"
    )
    reference = "localhost:5999/app:1@sha256:" + "ab" * 32  # no trust data: nothing to fetch
    argv = ["policy", "eval", reference, "--policy", str(signed), "--output", "json"]
    assert _main_exit(argv) == 1
    (verdict,) = json.loads(capsys.readouterr().out)["verdicts"]
    assert verdict["allow"] is False and verdict["action"] == "BLOCK"
    (reason,) = verdict["reasons"]
    assert reason["policy"] == "must-be-signed" and reason["rule"] == "require_signed"
    assert "localhost:5999/app:1 is not signed" in reason["message"]
