"""Issue 14, "Configuration fails closed": each test stages what an attacker (or a careless
deployment) does and checks that trustkit refuses loudly instead of quietly allowing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.cosign import put_tiny_image

from trustkit._json import load_json_object
from trustkit.attest.reports import parse_report
from trustkit.attest.vex import parse_vex
from trustkit.cli import main
from trustkit.config import Settings
from trustkit.errors import BadInputError, ReportFormatError
from trustkit.keys import KeyStore
from trustkit.registry.location import open_image_location

# one digit past CPython's int-to-str limit (sys.get_int_max_str_digits(), 4,300 by default)
HUGE_INT = "9" * 4301


# --- an integer of over 4,300 digits: one line, exit 2 -------------------------------------
def test_huge_integer_in_a_report_is_a_format_error() -> None:
    data = f'{{"SchemaVersion": {HUGE_INT}, "Results": []}}'.encode()
    with pytest.raises(ReportFormatError, match="number too long"):
        parse_report(data)


def test_huge_integer_in_vex_is_a_format_error() -> None:
    data = (
        '{"@context": "https://openvex.dev/ns/v0.2.0", "version": '
        + HUGE_INT
        + ', "statements": []}'
    ).encode()
    with pytest.raises(ReportFormatError, match="number too long"):
        parse_vex(data)


def test_huge_integer_in_any_untrusted_json_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="hook request is not valid JSON"):
        load_json_object(f'{{"n": {HUGE_INT}}}', what="hook request")


def test_huge_integer_report_through_the_cli_is_one_line_exit_2(
    settings: Settings,
    attest_layout: Path,
    key_store: KeyStore,
    passphrase_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = f"oci:{attest_layout}:v1"
    put_tiny_image(open_image_location(settings, image), "v1")
    key_store.generate(role="scanner", name="scanner")
    report = tmp_path / "report.json"
    report.write_text(f'{{"SchemaVersion": 2, "Results": [], "ArtifactName": {HUGE_INT}}}')
    vex = tmp_path / "app.vex.json"
    vex.write_text(json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "statements": []}))
    vex.write_text(vex.read_text()[:-1] + f', "version": {HUGE_INT}}}')
    clean = Path(__file__).parent / "data" / "reports" / "trivy_alpine-39.json"
    for extra in (["--report", str(report)], ["--report", str(clean), "--vex", str(vex)]):
        with pytest.raises(SystemExit) as exc:
            main(["scan", "attest", image, *extra])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "number too long" in err and "Traceback" not in err
