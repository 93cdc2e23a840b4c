"""``trustkit gate`` over the real pipeline: exit codes, report formats, GitHub annotations."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from fixtures.pipeline import PipelineWorld, policy_yaml
from fixtures.registry import free_port

from trustkit.cli import main
from trustkit.config import Settings
from trustkit.enforce import check_image
from trustkit.verdict import Action, Context

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def gate_settings(
    pipeline_world: PipelineWorld, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return pipeline_world.with_policies(
        tmp_path_factory.mktemp("gate"), policy_yaml("vulnerability-policy", severity="HIGH")
    )


@pytest.fixture
def gate_env(
    pipeline_world: PipelineWorld, gate_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    for key, value in pipeline_world.env(gate_settings).items():
        if key.startswith("SERVIN_"):
            monkeypatch.setenv(key, value)
    return gate_settings


def gate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["gate", *args])
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


# --- exit codes --------------------------------------------------------------------------------
def test_exit_0_when_every_image_is_allowed(
    pipeline_world: PipelineWorld, gate_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = gate(capsys, pipeline_world.ref("clean"))
    assert code == 0
    assert "ALLOW" in out and pipeline_world.digest("clean") in out


def test_exit_1_when_one_image_is_blocked(
    pipeline_world: PipelineWorld, gate_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = gate(
        capsys, "--output", "json", pipeline_world.ref("clean"), pipeline_world.ref("juice")
    )
    assert code == 1
    document = json.loads(out)
    assert document["allowed"] is False and document["action"] == "BLOCK"
    assert [v["allow"] for v in document["verdicts"]] == [True, False]
    assert document["verdicts"][1]["reasons"][0]["rule"] == "severity"
    # the unsigned image (content trust on) is blocked too, by trust, outside any policy
    code, out, _ = gate(capsys, "--output", "json", pipeline_world.ref("unsigned"))
    assert code == 1 and json.loads(out)["verdicts"][0]["reasons"][0]["rule"] == "trust"


def test_exit_2_for_a_bad_reference_before_anything_is_fetched(
    pipeline_world: PipelineWorld, gate_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = gate(capsys, pipeline_world.ref("juice"), "Not A Reference")
    assert code == 2 and out == "" and "Not A Reference" in err


@pytest.mark.parametrize(
    "text",
    [
        policy_yaml("typo", severity="HIHG"),
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: x\naction: BLOCK\nrules: [\n",
        "",
        policy_yaml("unknown-rule", allow_everything=True),
    ],
    ids=["bad-severity", "bad-yaml", "empty", "unknown-rule"],
)
def test_exit_2_for_a_malformed_policy_file_never_allow(
    text: str,
    pipeline_world: PipelineWorld,
    gate_env: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(text)
    for image in ("clean", "juice"):
        code, out, err = gate(capsys, "--policy", str(broken), pipeline_world.ref(image))
        assert code == 2 and "ALLOW" not in out and "broken.yaml" in err
    # the same file in the policy directory
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    (policy_dir / "broken.yaml").write_text(text)
    monkeypatch.setenv("SERVIN_POLICY_DIR", str(policy_dir))
    code, out, err = gate(capsys, pipeline_world.ref("clean"))
    assert code == 2 and "broken.yaml" in err


def test_exit_2_for_an_image_that_does_not_exist(
    pipeline_world: PipelineWorld,
    gate_env: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVIN_CONTENT_TRUST", "0")  # policy asks the registry for the digest
    missing = pipeline_world.ref("clean", tag="no-such-tag")
    code, out, err = gate(capsys, missing, pipeline_world.ref("clean"))
    assert code == 2
    assert err.startswith(f"trustkit: {missing}: ") and err.count("\n") == 1
    assert "no such image in the registry" in err and "check the repository and tag" in err
    assert "ALLOW" in out  # the image that exists is still reported
    assert not out.startswith("\n")


def test_exit_3_when_the_registry_is_unreachable(
    pipeline_world: PipelineWorld,
    gate_env: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVIN_CONTENT_TRUST", "0")  # policy asks the registry for the digest
    down = f"127.0.0.1:{free_port()}/t/gone:v1"
    code, out, err = gate(capsys, "--output", "json", down, pipeline_world.ref("clean"))
    assert code == 3 and down in err
    document = json.loads(out)
    assert document["allowed"] is False
    assert document["errors"][0]["image"] == down
    assert [v["allow"] for v in document["verdicts"]] == [True]  # the others are still reported
    # a block is the stronger statement
    code, _, err = gate(capsys, down, pipeline_world.ref("juice"))
    assert code == 1 and down in err


def test_unchecked_images_show_in_sarif_and_junit(
    pipeline_world: PipelineWorld,
    gate_env: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    data_dir: Path,
) -> None:
    """An image the gate could not check is never silently absent from a CI report."""
    monkeypatch.setenv("SERVIN_CONTENT_TRUST", "0")
    down = f"127.0.0.1:{free_port()}/t/gone:v1"
    code, out, _ = gate(capsys, "--output", "sarif", down, pipeline_world.ref("clean"))
    assert code == 3
    sarif = json.loads(out)
    schema = json.loads((data_dir / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(sarif, schema)
    invocation = sarif["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    [note] = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and down in note["message"]["text"]
    code, out, _ = gate(capsys, "--output", "junit", down, pipeline_world.ref("clean"))
    assert code == 3
    root = ET.fromstring(out)
    assert root.get("errors") == "1"
    errors = root.findall(".//testcase/error")
    assert len(errors) == 1 and "unreachable" in (errors[0].get("message") or "")


# --- report formats ----------------------------------------------------------------------------
def test_sarif_validates_and_has_one_result_per_blocking_finding(
    pipeline_world: PipelineWorld,
    gate_env: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    data_dir: Path,
) -> None:
    report = tmp_path / "trustkit.sarif"
    images = [pipeline_world.ref("juice"), pipeline_world.ref("clean")]
    code, out, _ = gate(capsys, "--output", "sarif", "--output-file", str(report), *images)
    assert code == 1 and out == ""
    document = json.loads(report.read_text())
    schema = json.loads((data_dir / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(document, schema)
    juice = check_image(gate_env, images[0], context=Context.CI)
    blocking = [f for r in juice.reasons if r.action is Action.BLOCK for f in r.affected]
    assert len(blocking) >= 25 + 128  # every CRITICAL and HIGH finding of the report
    (run,) = document["runs"]
    assert len(run["results"]) == len(blocking)
    assert {r["level"] for r in run["results"]} == {"error"}
    assert {r["properties"]["vulnerability"] for r in run["results"]} == {
        f.vulnerability_id for f in blocking
    }
    fingerprints = [r["partialFingerprints"]["trustkitFinding/v1"] for r in run["results"]]
    assert len(set(fingerprints)) == len(fingerprints)
    assert [v["action"] for v in run["properties"]["verdicts"]] == ["BLOCK", "ALLOW"]


def test_junit_and_json_reports(
    pipeline_world: PipelineWorld,
    gate_env: Settings,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    images = [pipeline_world.ref("juice"), pipeline_world.ref("clean")]
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    code, out, _ = gate(capsys, "--output", "junit", "--output-file", str(junit), *images)
    assert code == 1 and out == ""
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "1" and root.get("tests") == "2"
    suites = root.findall("testsuite")
    assert len(suites) == 2
    failure = suites[0].find("testcase/failure")
    assert failure is not None and "at or above HIGH" in (failure.get("message") or "")
    assert suites[1].find("testcase/failure") is None

    as_json = tmp_path / "gate.json"
    code, _, _ = gate(capsys, "--output", "json", "--output-file", str(as_json), *images)
    assert code == 1
    assert [v["action"] for v in json.loads(as_json.read_text())["verdicts"]] == ["BLOCK", "ALLOW"]


def test_github_actions_annotations(
    pipeline_world: PipelineWorld,
    gate_env: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, out, _ = gate(capsys, pipeline_world.ref("juice"))
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and "vulnerability-policy" in errors[0]
    assert "at or above HIGH" in errors[0]
    # a machine-readable report on stdout stays parseable: the annotations go to stderr
    code, out, err = gate(capsys, "--output", "sarif", pipeline_world.ref("juice"))
    assert code == 1 and json.loads(out)["version"] == "2.1.0"
    assert any(line.startswith("::error ") for line in err.splitlines())
    # without GITHUB_ACTIONS there are none
    monkeypatch.delenv("GITHUB_ACTIONS")
    _, out, err = gate(capsys, pipeline_world.ref("juice"))
    assert "::error" not in out + err
