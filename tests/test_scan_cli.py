"""``trustkit scan attest`` and ``trustkit scan results`` through the real CLI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures.cosign import put_tiny_image
from fixtures.reports import retarget

from trustkit.attest.reports import parse_report
from trustkit.attest.service import scan_and_attest
from trustkit.cli import cli, main
from trustkit.config import Settings
from trustkit.errors import BadInputError, KeyStoreError, TrustEnvironmentError
from trustkit.keys import CryptoSigner, KeyStore, public_key_pem
from trustkit.registry.location import open_image_location

DATA = Path(__file__).parent / "data" / "reports"
# the sample names the tarball image it was made from; as if the scanner had scanned ours
_ALPINE_DIR = tempfile.TemporaryDirectory(prefix="trustkit-scan-cli-")
ALPINE = Path(_ALPINE_DIR.name) / "alpine.trivy.json"
ALPINE.write_bytes(retarget((DATA / "trivy_alpine-39.json").read_bytes()))


@pytest.fixture
def image(settings: Settings, attest_layout: Path) -> str:
    text = f"oci:{attest_layout}:v1"
    put_tiny_image(open_image_location(settings, text), "v1")
    return text


@pytest.fixture
def scanner_key(key_store: KeyStore, passphrase_env: Path) -> str:
    return key_store.generate(role="scanner", name="scanner").keyid


def vex_file(tmp_path: Path, vuln: str) -> Path:
    path = tmp_path / "app.vex.json"
    path.write_text(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "statements": [
                    {
                        "vulnerability": {"name": vuln},
                        "products": [{"@id": "pkg:oci/app"}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_present",
                    }
                ],
            }
        )
    )
    return path


def test_attest_then_results(image: str, scanner_key: str, tmp_path: Path) -> None:
    runner = CliRunner()
    suppressed_id = parse_report(ALPINE.read_bytes()).findings[0].vulnerability_id
    done = runner.invoke(
        cli,
        [
            "scan",
            "attest",
            image,
            "--report",
            str(ALPINE),
            "--vex",
            str(vex_file(tmp_path, suppressed_id)),
        ],
    )
    assert done.exit_code == 0, done.output
    assert "Attested" in done.output and "suppressed by VEX" in done.output
    assert scanner_key[:12] in done.output

    done = runner.invoke(cli, ["scan", "results", image, "--output", "json"])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    newest = doc["newest"]
    assert doc["verified"] == 1 and doc["unverifiable"] == []
    assert newest["signer"] == scanner_key
    raw = json.loads(ALPINE.read_bytes())
    vulns = [v for r in raw["Results"] for v in r.get("Vulnerabilities") or []]
    hit = [v for v in vulns if v["VulnerabilityID"] == suppressed_id]
    want = {s: 0 for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")}
    for v in vulns:
        if v["VulnerabilityID"] != suppressed_id:
            want[v["Severity"]] += 1
    assert newest["counts"] == want
    assert newest["suppressed"] == len(hit)
    flagged = [f for f in newest["findings"] if f["suppressed"]]
    assert {f["id"] for f in flagged} == {suppressed_id}
    assert flagged[0]["vex"]["justification"] == "vulnerable_code_not_present"

    done = runner.invoke(cli, ["scan", "results", image])
    assert done.exit_code == 0, done.output
    assert "1 verified scan attestation(s), 0 unverifiable" in done.output
    assert "suppressed: not_affected" in done.output
    assert "Fixable" in done.output


def test_results_with_only_foreign_attestations_is_refused(
    image: str, settings: Settings, scanner_key: str, tmp_path: Path
) -> None:
    stranger = CryptoSigner.generate_ecdsa()
    from trustkit.attest.service import attest_report

    attest_report(settings, image, report_bytes=ALPINE.read_bytes(), signer=stranger)
    with pytest.raises(SystemExit) as exc:
        main(["scan", "results", image])
    assert exc.value.code == 1
    # trusting the stranger's key with --trusted-key makes it verify
    pub = tmp_path / "stranger.pub"
    pub.write_bytes(public_key_pem(stranger.public_key))
    done = CliRunner().invoke(
        cli, ["scan", "results", image, "--trusted-key", str(pub), "--output", "json"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["newest"]["signer"] == stranger.public_key.keyid


def test_missing_scanner_key_is_a_clear_error(
    image: str, passphrase_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan", "attest", image, "--report", str(ALPINE)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no scanner key named 'scanner'" in err
    assert "trustkit trust key generate scanner --role scanner" in err


def test_bad_report_is_exit_2(
    image: str, scanner_key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(SystemExit) as exc:
        main(["scan", "attest", image, "--report", str(bad)])
    assert exc.value.code == 2
    assert "unknown report format" in capsys.readouterr().err


def test_scan_and_attest_runs_the_scanner(
    image: str, settings: Settings, scanner_key: str, tmp_path: Path
) -> None:
    script = tmp_path / "fake-trivy"
    script.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat {ALPINE}\n')
    script.chmod(0o755)
    result = scan_and_attest(
        settings, image, report=None, scanner_command=f"{script} image --format json", key_name=None
    )
    assert result.report.counts() == parse_report(ALPINE.read_bytes()).counts()
    assert (tmp_path / "args").read_text().startswith("image --format json ")
    with pytest.raises(TrustEnvironmentError, match="scanner executable 'no-such-trivy' not found"):
        scan_and_attest(
            settings, image, report=None, scanner_command="no-such-trivy image", key_name=None
        )
    with pytest.raises(BadInputError, match="no scan report and no scanner command"):
        scan_and_attest(settings, image, report=None, scanner_command=None, key_name=None)
    with pytest.raises(KeyStoreError, match="no scanner key named 'ci'"):
        scan_and_attest(settings, image, report=ALPINE, scanner_command=None, key_name="ci")
