"""Output that fits and one set of conventions (issue 15): at COLUMNS=80 no table cuts what a
user copies (CVE/GHSA ids, package names, digests); ``scan results --severity`` and a title
column; ``-o json``/``--json`` aliases; ``scan attest --report-format`` (``--format``
deprecated); ``trust verify`` of a never-signed repository is "not trusted" (exit 1);
``trust inspect a b`` goes on past an unknown repository."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.cosign import put_tiny_image
from fixtures.registry import BuiltImage, Registry
from fixtures.reports import retarget

from trustkit.cli import cli, main
from trustkit.config import Settings
from trustkit.errors import AuthenticationError, BadInputError
from trustkit.keys import KeyStore
from trustkit.registry.location import open_image_location

DATA = Path(__file__).parent / "data" / "reports"
LONG_ID = "GHSA-xxxx-yyyy-zzzz-a-very-long-advisory-identifier-2026"
LONG_PACKAGE = "org.example.enterprise:really-long-artifact-name-for-tables"


def _report(tmp_path: Path) -> Path:
    """The alpine sample plus one finding whose id and package are longer than 40 columns."""
    doc = json.loads(retarget((DATA / "trivy_alpine-39.json").read_bytes()))
    vulns = doc["Results"][0]["Vulnerabilities"]
    extra = dict(vulns[0])
    extra.update(
        VulnerabilityID=LONG_ID,
        PkgName=LONG_PACKAGE,
        Severity="CRITICAL",
        Title="a title long enough that it has to wrap when the terminal is eighty columns wide",
    )
    vulns.append(extra)
    path = tmp_path / "long.trivy.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def attested(settings: Settings, attest_layout: Path, passphrase_env: Path, tmp_path: Path) -> str:
    KeyStore(settings).generate(role="scanner", name="scanner")
    image = f"oci:{attest_layout}:v1"
    put_tiny_image(open_image_location(settings, image), "v1")
    done = CliRunner().invoke(
        cli,
        ["scan", "attest", image, "--report", str(_report(tmp_path)), "--report-format", "trivy"],
    )
    assert done.exit_code == 0, done.output
    return image


def test_scan_results_at_80_columns_keeps_ids_and_packages_whole(attested: str) -> None:
    from trustkit.attest.reports import parse_report

    done = CliRunner().invoke(cli, ["scan", "results", attested], env={"COLUMNS": "80"})
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    report = parse_report(retarget((DATA / "trivy_alpine-39.json").read_bytes()))
    for finding in report.findings:
        assert any(finding.vulnerability_id in line for line in lines), finding.vulnerability_id
        assert any(finding.package_name in line for line in lines), finding.package_name
    assert any(LONG_ID in line for line in lines) and any(LONG_PACKAGE in line for line in lines)
    digest_line = next(line for line in lines if "sha256:" in line)
    assert len(digest_line.split("sha256:")[1].split()[0]) == 64  # the whole digest


def test_scan_results_severity_filter(attested: str) -> None:
    done = CliRunner().invoke(
        cli, ["scan", "results", attested, "--severity", "CRITICAL"], env={"COLUMNS": "80"}
    )
    assert done.exit_code == 0, done.output
    listed = done.output.split("\nFindings\n", 1)[1]
    assert LONG_ID in listed, done.output
    assert all(s not in listed for s in ("HIGH", "MEDIUM", "LOW"))
    bad = CliRunner().invoke(cli, ["scan", "results", attested, "--severity", "SEVERE"])
    assert isinstance(bad.exception, BadInputError) and bad.exception.exit_code == 2


def test_scan_output_aliases_and_the_deprecated_format(
    settings: Settings, attest_layout: Path, passphrase_env: Path, tmp_path: Path
) -> None:
    KeyStore(settings).generate(role="scanner", name="scanner")
    image = f"oci:{attest_layout}:v1"
    put_tiny_image(open_image_location(settings, image), "v1")
    runner = CliRunner()
    old = runner.invoke(
        cli, ["scan", "attest", image, "--report", str(_report(tmp_path)), "--format", "trivy"]
    )
    assert old.exit_code == 0, old.output
    assert "--format is deprecated" in old.output and "--report-format" in old.output
    for flags in (["--json"], ["-o", "json"], ["--output", "json"]):
        done = runner.invoke(cli, ["scan", "results", image, *flags])
        assert done.exit_code == 0, done.output
        assert json.loads(done.output)["verified"] >= 1


def test_trust_verify_never_signed_is_exit_1_and_inspect_goes_on(
    settings: Settings, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trustkit.collections import sign_tag
    from trustkit.refs import parse

    sign_tag(settings, parse("example.test/team/known:v1"), digest="sha256:" + "a" * 64, size=9)
    with pytest.raises(SystemExit) as exited:
        main(["trust", "verify", "example.test/team/never-signed:v1"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "not signed" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exited:
        main(["trust", "inspect", "example.test/team/unknown", "example.test/team/known"])
    assert exited.value.code == 1
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert [r["Name"] for r in shown] == ["example.test/team/known"]
    assert "example.test/team/unknown" in captured.err


def test_scan_results_table_fits_80_columns_with_a_title_column(
    settings: Settings, attest_layout: Path, passphrase_env: Path
) -> None:
    """Ids that fit: trivy's table (Library, Vulnerability, Severity, ..., Title), ids whole."""
    from trustkit.attest.reports import parse_report

    KeyStore(settings).generate(role="scanner", name="scanner")
    image = f"oci:{attest_layout}:v1"
    put_tiny_image(open_image_location(settings, image), "v1")
    data = retarget((DATA / "trivy_alpine-39.json").read_bytes())
    report = attest_layout.parent / "alpine.json"
    report.write_bytes(data)
    runner = CliRunner()
    assert runner.invoke(cli, ["scan", "attest", image, "--report", str(report)]).exit_code == 0
    done = runner.invoke(cli, ["scan", "results", image], env={"COLUMNS": "80"})
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "Vulnerability" in line)
    assert "Library" in header and "Title" in header
    for finding in parse_report(data).findings:
        assert any(finding.vulnerability_id in line for line in lines)


def test_trust_key_list_has_a_header_and_marks_rotated_keys_retired(
    settings: Settings, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trustkit.collections import sign_tag
    from trustkit.refs import parse

    repo = "example.test/team/rotated"
    sign_tag(settings, parse(f"{repo}:v1"), digest="sha256:" + "b" * 64, size=9)
    old = [r.keyid for r in KeyStore(settings).records(role="targets")]
    with pytest.raises(SystemExit) as exited:
        main(["trust", "key", "rotate", repo])
    assert exited.value.code == 0
    new = capsys.readouterr().out.strip()
    with pytest.raises(SystemExit):
        main(["trust", "key", "list", "--no-trunc"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KEY", "ID", "ROLE", "TYPE", "STATUS", "REPOSITORY", "NAME"]
    by_id = {line.split()[0]: line.split() for line in lines[1:]}
    assert len(old) == 1 and by_id[old[0]][3] == "retired"
    assert by_id[new][3] == "current" and by_id[new][1] == "targets"
    with pytest.raises(SystemExit):
        main(["trust", "key", "list"])
    short = capsys.readouterr().out.splitlines()
    assert all(len(line.split()[0]) == 12 for line in short[1:])


def test_trust_inspect_pretty_at_80_columns_keeps_digests_whole(
    settings: Settings, passphrase_env: Path
) -> None:
    from trustkit.collections import sign_tag
    from trustkit.refs import parse

    repo = "example.test/team/pretty"
    digests = {tag: "sha256:" + c * 64 for tag, c in (("v1", "c"), ("a-long-release-tag", "d"))}
    for tag, digest in digests.items():
        sign_tag(settings, parse(f"{repo}:{tag}"), digest=digest, size=9)
    done = CliRunner().invoke(cli, ["trust", "inspect", "--pretty", repo], env={"COLUMNS": "80"})
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for digest in digests.values():  # docker shows the hex, without "sha256:"
        assert any(digest.removeprefix("sha256:") in line for line in lines), done.output
    wide = CliRunner().invoke(cli, ["trust", "inspect", "--pretty", repo], env={"COLUMNS": "200"})
    header = next(line for line in wide.output.splitlines() if "DIGEST" in line)
    assert header.split() == ["SIGNED", "TAG", "DIGEST", "SIGNERS"]


def test_trust_verify_output_json_and_its_refusal(
    settings: Settings, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trustkit.collections import sign_tag
    from trustkit.refs import parse

    digest = "sha256:" + "e" * 64
    sign_tag(settings, parse("example.test/team/json:v1"), digest=digest, size=9)
    with pytest.raises(SystemExit) as exited:
        main(["trust", "verify", "-o", "json", "example.test/team/json:v1"])
    assert exited.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True and doc["digest"] == digest
    with pytest.raises(SystemExit) as exited:
        main(["trust", "verify", "--json", "example.test/team/json:v2"])
    assert exited.value.code == 1
    captured = capsys.readouterr()
    refusal = json.loads(captured.out)
    assert refusal["refused"] is True and refusal["error"]["kind"] == "unsigned"
    assert captured.err.count("\n") == 1
    with pytest.raises(SystemExit) as exited:
        main(["trust", "inspect", "-o", "table", "example.test/team/json"])
    assert "SIGNED TAG" in capsys.readouterr().out


def test_scan_attest_json_prints_the_refusal(
    settings: Settings, attest_layout: Path, passphrase_env: Path, tmp_path: Path
) -> None:
    image = f"oci:{attest_layout}:v1"
    put_tiny_image(open_image_location(settings, image), "v1")
    done = CliRunner().invoke(
        cli, ["scan", "attest", image, "--report", str(_report(tmp_path)), "-o", "json"]
    )
    assert isinstance(done.exception, BadInputError)  # no scanner key
    doc = json.loads(done.stdout)
    assert doc["refused"] is True and doc["attested"] is False
    assert "no scanner key" in doc["error"]["message"]


def test_trust_sign_output_json(
    settings: Settings, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = "sha256:" + "f" * 64
    argv = ["trust", "sign", "example.test/team/signed:v1", "--digest", digest, "--size", "9"]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "-o", "json"])
    assert exited.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["signed"] is True and doc["digest"] == digest and doc["roles"] == ["targets"]
    with pytest.raises(SystemExit) as exited:
        main([*argv[:3], "--digest", "md5:00", "--size", "9", "--json"])
    assert exited.value.code == 2
    assert json.loads(capsys.readouterr().out)["refused"] is True


# --- -o/--output json on signer, revoke, renew, login and logout ------------------------------
def test_trust_signer_add_and_remove_output_json(
    settings: Settings,
    passphrase_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fixtures.base import run_cli

    monkeypatch.chdir(tmp_path)
    assert run_cli(["trust", "key", "generate", "alice"], capsys)[0] == 0
    repo = "example.test/team/signers"
    code, out, err = run_cli(
        ["trust", "signer", "add", "--key", "alice.pub", "alice", repo, "-o", "json"], capsys
    )
    assert code == 0, err
    assert json.loads(out) == {
        "signer": "alice",
        "added": True,
        "repositories": [{"repository": repo, "warnings": []}],
    }
    # plain text stays as documented
    code, out, _ = run_cli(["trust", "signer", "add", "--key", "alice.pub", "carol", repo], capsys)
    assert (code, out) == (0, f"Successfully added signer: carol to {repo}\n")
    # a refusal is one JSON document on stdout, one line on stderr, the documented exit code
    code, out, err = run_cli(
        ["trust", "signer", "add", "--key", "missing.pub", "bob", repo, "--json"], capsys
    )
    assert code == 2 and err.count("\n") == 1
    refusal = json.loads(out)
    assert refusal["refused"] is True and refusal["added"] is False
    assert "missing.pub" in refusal["error"]["message"] and refusal["error"]["exitCode"] == 2

    code, out, err = run_cli(["trust", "signer", "remove", "carol", repo, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["signer"] == "carol" and doc["removed"] is True
    assert doc["repositories"] == [{"repository": repo, "warnings": [], "untrusted_tags": []}]
    code, out, err = run_cli(["trust", "signer", "remove", "alice", repo, "-o", "json"], capsys)
    assert code == 2, err  # the last signer needs --force
    refusal = json.loads(out)
    assert refusal["refused"] is True and refusal["repository"] == repo
    assert refusal["repositories"] == []


def test_trust_renew_output_json_names_what_was_renewed_and_what_failed(
    settings: Settings, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fixtures.base import run_cli

    from trustkit.collections import sign_tag
    from trustkit.refs import parse

    repo = "example.test/team/renewed"
    sign_tag(settings, parse(f"{repo}:v1"), digest="sha256:" + "b" * 64, size=9)
    code, out, err = run_cli(["trust", "renew", repo, "-o", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [r["repository"] for r in doc["renewed"]] == [repo]
    assert {"snapshot", "timestamp"} <= set(doc["renewed"][0]["roles"])
    assert doc["failed"] == [] and "refused" not in doc
    # two collections, one unknown: the other is still renewed and the JSON names both
    code, out, err = run_cli(
        ["trust", "renew", repo, "example.test/team/never-made", "--json"], capsys
    )
    assert code != 0
    doc = json.loads(out)
    assert [r["repository"] for r in doc["renewed"]] == [repo]
    assert [f["repository"] for f in doc["failed"]] == ["example.test/team/never-made"]
    assert doc["refused"] is True and doc["error"]["exitCode"] == code
    code, out, _ = run_cli(["trust", "renew", "--json"], capsys)
    assert code == 2 and json.loads(out)["refused"] is True


@pytest.mark.registry
def test_trust_revoke_output_json_and_its_refusal(
    settings: Settings,
    registry: Registry,
    oci_image: Callable[..., BuiltImage],
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fixtures.base import run_cli, use_cli_env

    use_cli_env(monkeypatch, settings)
    monkeypatch.setenv("SERVIN_CONTENT_TRUST", "1")
    ref = registry.ref(repo_name, "v1")
    code, _, err = run_cli(["push", oci_image().oci, ref], capsys)
    assert code == 0, err
    code, out, err = run_cli(["trust", "revoke", ref, "-o", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["reference"] == ref and doc["tag"] == "v1" and doc["revoked"] is True
    assert doc["roles"] and doc["cosign_signatures_removed"] == 1
    code, out, _ = run_cli(["pull", ref], capsys)
    assert code == 1  # revoked for real
    # every tag without --yes and without a terminal: refused, and the JSON says so
    repo = ref.rsplit(":", 1)[0]
    code, out, err = run_cli(["trust", "revoke", repo, "--json"], capsys)
    assert code == 2 and err.count("\n") == 1
    refusal = json.loads(out)
    assert refusal["refused"] is True and refusal["revoked"] is False
    assert "needs confirmation" in refusal["error"]["message"]


@pytest.mark.registry
def test_login_and_logout_output_json(
    basic_registry: Registry,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVIN_CONFIG", str(settings.effective_config_dir))
    reg = basic_registry
    argv = ["login", "-u", reg.username or "", "--password-stdin", reg.host, "-o", "json"]
    done = CliRunner().invoke(cli, argv, input=f"{reg.password}\n")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc == {
        "registry": reg.host,
        "logged_in": True,
        "username": reg.username,
        "config_file": str(settings.credentials_file),
        "stored_unencrypted": True,
    }
    assert "unencrypted" in done.stderr  # the warning stays on stderr
    wrong = CliRunner().invoke(cli, [*argv[:-2], "--json"], input="not-the-password\n")
    assert isinstance(wrong.exception, AuthenticationError)  # main() exits with its code
    refusal = json.loads(wrong.stdout)
    assert refusal["refused"] is True and refusal["logged_in"] is False
    assert refusal["error"]["exitCode"] == wrong.exception.exit_code == 3
    out = CliRunner().invoke(cli, ["logout", reg.host, "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout) == {"registry": reg.host, "removed": True}
    again = CliRunner().invoke(cli, ["logout", reg.host, "-o", "table"])
    assert again.exit_code == 0 and again.stdout == f"Not logged in to {reg.host}\n"
