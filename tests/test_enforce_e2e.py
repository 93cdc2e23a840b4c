"""The one pipeline (``trustkit.enforce.check_image``) end to end: a real registry, real signed
collections, real signed scan attestations of the sample Trivy reports; and the same verdict
from every entry point (push, pull, hook executable, hooks API, socket server, gate)."""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fixtures.pipeline import (
    CLEAN_REPORT,
    JUICE_REPORT,
    TRUSTKIT,
    PipelineWorld,
    policy_yaml,
)
from fixtures.reports import retarget

from trustkit import hook_server, hooks
from trustkit.cli import main
from trustkit.collections import verify_tag
from trustkit.enforce import check_image
from trustkit.errors import UnknownRepositoryError, UntrustedError
from trustkit.pipeline.flows import push_image
from trustkit.policy import Policy, load_policy_text
from trustkit.refs import parse
from trustkit.verdict import Action, Context, Verdict

pytestmark = pytest.mark.registry

JUICE_CRITICAL = (
    "CVE-2015-9235", "CVE-2017-16042", "CVE-2019-10744", "CVE-2020-28282", "CVE-2020-28502",
    "CVE-2021-31597", "CVE-2021-36159", "CVE-2021-3711", "CVE-2021-3918", "CVE-2021-44906",
    "CVE-2022-2421", "CVE-2022-37434", "CVE-2023-22578", "CVE-2023-22579", "CVE-2023-25813",
    "CVE-2023-46233", "GHSA-5mrr-rgp6-x4gr",
)  # fmt: skip
JUICE_UNFIXED_CRITICAL = "GHSA-5mrr-rgp6-x4gr"


def policy(name: str, action: str = "BLOCK", **rules: object) -> Policy:
    return load_policy_text(policy_yaml(name, action, **rules))


def check(
    world: PipelineWorld,
    name: str,
    *policies: Policy,
    now: datetime | None = None,
    trust: bool | None = None,
    reference: str | None = None,
    context: Context = Context.PULL,
) -> Verdict:
    return check_image(
        world.settings,
        reference or world.ref(name),
        context=context,
        policies=list(policies),
        now=now,
        require_trust=trust,
    )


def rules_of(verdict: Verdict) -> list[str]:
    return [r.rule for r in verdict.reasons]


def allowlist(ids: tuple[str, ...], expires: str) -> list[dict[str, str]]:
    return [
        {"id": i, "reason": "not reachable", "owner": "sec@example.com", "expires": expires}
        for i in ids
    ]


# --- the pipeline ------------------------------------------------------------------------------
def test_high_threshold_blocks_juice_shop_and_lets_a_clean_image_through(
    pipeline_world: PipelineWorld,
) -> None:
    high = policy("no-high", severity="HIGH")
    juice = check(pipeline_world, "juice", high)
    assert not juice.allowed and juice.action is Action.BLOCK
    assert juice.digest == pipeline_world.digest("juice")
    assert rules_of(juice) == ["severity"]
    reason = juice.reasons[0]
    assert reason.policy == "no-high" and "at or above HIGH" in reason.message
    assert set(JUICE_CRITICAL) <= set(reason.findings)
    assert reason.remedy and "upgrade" in reason.remedy and "allowlist" in reason.remedy
    assert [p.action for p in juice.policies] == [Action.BLOCK]

    clean = check(pipeline_world, "clean", high)
    assert clean.allowed and clean.action is Action.ALLOW and clean.reasons == ()
    assert clean.digest == pipeline_world.digest("clean")
    assert [(p.policy, p.action) for p in clean.policies] == [("no-high", Action.ALLOW)]


def test_critical_allowlist_lets_juice_shop_through_until_it_expires(
    pipeline_world: PipelineWorld,
) -> None:
    today = pipeline_world.attested_at
    expires = (today + timedelta(days=30)).strftime("%Y-%m-%d")
    waived = policy(
        "critical-waived", severity="CRITICAL", allowlist=allowlist(JUICE_CRITICAL, expires)
    )
    before = check(pipeline_world, "juice", waived, now=today + timedelta(days=29))
    assert before.allowed and before.action is Action.ALLOW, before.summary()

    after = check(pipeline_world, "juice", waived, now=today + timedelta(days=31))
    assert not after.allowed and after.action is Action.BLOCK
    lapsed = [r for r in after.reasons if r.rule == "allowlist"]
    assert {r.findings[0].upper() for r in lapsed} == {i.upper() for i in JUICE_CRITICAL}
    assert all(f"expired on {expires}" in r.message for r in lapsed)
    assert all("renew" in (r.remedy or "") for r in lapsed)

    # one id short of the full list is not enough
    partial = policy(
        "critical-partial", severity="CRITICAL", allowlist=allowlist(JUICE_CRITICAL[1:], expires)
    )
    short = check(pipeline_world, "juice", partial, now=today)
    assert not short.allowed and short.reasons[0].findings == (JUICE_CRITICAL[0],)


def test_ignore_unfixed_changes_the_outcome_only_where_findings_have_no_fix(
    pipeline_world: PipelineWorld,
) -> None:
    expires = (pipeline_world.attested_at + timedelta(days=30)).strftime("%Y-%m-%d")
    fixable = tuple(i for i in JUICE_CRITICAL if i != JUICE_UNFIXED_CRITICAL)
    rules: dict[str, object] = {"severity": "CRITICAL", "allowlist": allowlist(fixable, expires)}
    strict = check(pipeline_world, "juice", policy("strict", **rules))
    assert not strict.allowed and strict.reasons[0].findings == (JUICE_UNFIXED_CRITICAL,)
    assert "ignore_unfixed" in (strict.reasons[0].remedy or "")
    lenient = check(pipeline_world, "juice", policy("lenient", ignore_unfixed=True, **rules))
    assert lenient.allowed, lenient.summary()
    # HIGH has fixable findings: ignore_unfixed does not change that outcome
    for unfixed in (False, True):
        high = check(pipeline_world, "juice", policy("h", severity="HIGH", ignore_unfixed=unfixed))
        assert not high.allowed
    # the clean report has no findings at all: nothing to change
    for unfixed in (False, True):
        assert check(pipeline_world, "clean", policy("c", severity="LOW", ignore_unfixed=unfixed))


def test_stale_and_missing_scans_are_blocked_when_required(pipeline_world: PipelineWorld) -> None:
    fresh = policy("fresh", severity="HIGH", max_scan_age="1d")
    now = pipeline_world.attested_at
    assert check(pipeline_world, "clean", fresh, now=now + timedelta(hours=1)).allowed
    stale = check(pipeline_world, "clean", fresh, now=now + timedelta(days=3))
    assert not stale.allowed and rules_of(stale) == ["require_scan"]
    assert "older than max_scan_age 1d" in stale.reasons[0].message
    assert "push --scan" in (stale.reasons[0].remedy or "")

    missing = check(pipeline_world, "noscan", policy("scanned", severity="HIGH"))
    assert not missing.allowed and rules_of(missing) == ["require_scan"]
    assert "no usable verified scan attestation" in missing.reasons[0].message
    # not required: the vulnerability rules are skipped, the image goes through
    optional = policy("optional", severity="HIGH", require_scan=False)
    assert check(pipeline_world, "noscan", optional).allowed
    optional_stale = policy(
        "optional-stale", severity="HIGH", max_scan_age="1d", require_scan=False
    )
    assert check(pipeline_world, "juice", optional_stale, now=now + timedelta(days=3)).allowed


def test_unsigned_image_is_blocked_when_the_policy_requires_signing(
    pipeline_world: PipelineWorld,
) -> None:
    signed_only = policy("signed-only", require_signed=True)
    # content trust off: only the policy asks for the signature
    unsigned = check(pipeline_world, "unsigned", signed_only, trust=False)
    assert not unsigned.allowed and rules_of(unsigned) == ["require_signed"]
    assert "is not signed" in unsigned.reasons[0].message
    assert "trustkit trust sign" in (unsigned.reasons[0].remedy or "")
    signed = check(pipeline_world, "juice", signed_only, trust=False)
    assert signed.allowed and signed.digest == pipeline_world.digest("juice")
    # without the policy and with trust off, the unsigned image is fine
    assert check(pipeline_world, "unsigned", trust=False).allowed


def test_content_trust_refuses_an_unsigned_tag_before_any_policy(
    pipeline_world: PipelineWorld,
) -> None:
    for policies in ((), (policy("audit-only", "AUDIT", severity="LOW"),)):
        verdict = check(pipeline_world, "unsigned", *policies)
        assert not verdict.allowed and verdict.action is Action.BLOCK
        assert rules_of(verdict) == ["trust"] and verdict.reasons[0].policy is None
        assert verdict.digest is None and verdict.policies == ()
        assert "not signed" in verdict.reasons[0].message
        assert "trustkit trust sign" in (verdict.reasons[0].remedy or "")
    # a signed tag goes through with no policy at all, pinned to its trusted digest
    signed = check(pipeline_world, "juice")
    assert signed.allowed and signed.digest == pipeline_world.digest("juice")


def test_a_digest_pinned_reference_must_be_the_trusted_digest(
    pipeline_world: PipelineWorld,
) -> None:
    # other content, present in the same repository under another (unsigned) tag
    push_image(
        pipeline_world.settings,
        pipeline_world.images["clean"].oci,
        pipeline_world.ref("juice", "other"),
        sign=False,
    )
    wrong = f"{pipeline_world.ref('juice')}@{pipeline_world.digest('clean')}"
    refused = check(pipeline_world, "juice", reference=wrong)
    assert not refused.allowed and rules_of(refused) == ["trust"]
    assert "is not the trusted digest" in refused.reasons[0].message
    assert pipeline_world.digest("juice") in refused.reasons[0].message
    # the same refusal under require_signed with content trust off
    by_policy = check(
        pipeline_world, "juice", policy("signed", require_signed=True), reference=wrong, trust=False
    )
    assert not by_policy.allowed and rules_of(by_policy)[0] == "require_signed"
    assert "is not the trusted digest" in by_policy.reasons[0].message
    right = f"{pipeline_world.ref('juice')}@{pipeline_world.digest('juice')}"
    assert check(pipeline_world, "juice", reference=right).allowed


@pytest.mark.parametrize("action", [Action.WARN, Action.AUDIT])
def test_warn_and_audit_let_the_image_through_with_reasons(
    pipeline_world: PipelineWorld, action: Action
) -> None:
    verdict = check(pipeline_world, "juice", policy("soft", action.name, severity="HIGH"))
    assert verdict.allowed and verdict.action is action
    assert rules_of(verdict) == ["severity"] and verdict.reasons[0].action is action
    assert verdict.digest == pipeline_world.digest("juice")


def test_every_matching_policy_is_reported_and_the_strictest_wins(
    pipeline_world: PipelineWorld,
) -> None:
    verdict = check(
        pipeline_world,
        "juice",
        policy("warn-high", "WARN", severity="HIGH"),
        policy("block-critical", severity="CRITICAL"),
        policy("audit-low", "AUDIT", severity="LOW"),
    )
    assert not verdict.allowed and verdict.action is Action.BLOCK
    assert {p.policy: p.action for p in verdict.policies} == {
        "warn-high": Action.WARN,
        "block-critical": Action.BLOCK,
        "audit-low": Action.AUDIT,
    }
    assert [r.action for r in verdict.reasons] == [Action.BLOCK, Action.WARN, Action.AUDIT]


# --- one verdict everywhere --------------------------------------------------------------------
def _socket_answer(sock_path: Path, stage: str, request: dict[str, object]) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sock_path))
        conn.sendall(json.dumps({"hook": stage, "request": request}).encode() + b"\n")
        reply: dict[str, object] = json.loads(conn.makefile("rb").readline())
    return reply


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


def test_push_pull_hooks_socket_and_gate_give_the_same_verdict(
    pipeline_world: PipelineWorld,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = pipeline_world
    settings = world.with_policies(tmp_path, policy_yaml("vulnerability-policy", severity="HIGH"))
    env = world.env(settings)
    for key, value in env.items():
        if key.startswith("SERVIN_"):
            monkeypatch.setenv(key, value)

    sock_dir = Path(tempfile.mkdtemp(prefix="tk-", dir="/tmp"))  # AF_UNIX paths are short
    server, thread = hook_server.start_background(settings, sock_dir / "hooks.sock")
    try:
        for name, allowed in (("juice", False), ("clean", True)):
            ref = world.ref(name)
            expected = check_image(settings, ref, context=Context.PULL)
            assert expected.allowed is allowed
            messages = [r.message for r in expected.reasons]
            code = 0 if allowed else 1
            request = {"operation": "pull", "reference": ref}

            api = hooks.run_hook(settings, "pre-pull", hooks.HookRequest.from_mapping(request))
            assert (api.allow, api.digest, api.exit_code) == (allowed, expected.digest, code)
            assert [r.message for r in api.reasons] == messages
            answer = api.to_dict()

            proc = subprocess.run(
                [*TRUSTKIT, "hook", "pre-pull"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            assert proc.returncode == code, proc.stderr
            assert json.loads(proc.stdout) == answer

            assert _socket_answer(sock_dir / "hooks.sock", "pre-pull", request) == {
                "exit": code,
                "answer": answer,
            }

            gate_code, out, _ = _run_main(["gate", "--output", "json", ref], capsys)
            assert gate_code == code
            gated = json.loads(out)["verdicts"][0]
            assert (gated["allow"], gated["action"], gated["digest"]) == (
                allowed,
                expected.action.name,
                expected.digest,
            )
            assert [r["message"] for r in gated["reasons"]] == messages

            pull_code, out, err = _run_main(["pull", "--json", ref], capsys)
            assert pull_code == code
            if allowed:
                assert json.loads(out)["verdict"]["reasons"] == []
            else:
                assert "refused" in err and all(m in err for m in messages[:3])

            # push the same content with --scan: the same decision before signing
            layout = world.images[name]
            pushed = f"{world.repo}/pushed-{name}:v1"
            sample = JUICE_REPORT if name == "juice" else CLEAN_REPORT
            report = tmp_path / f"{name}.trivy.json"  # a report of the content being pushed
            report.write_bytes(
                retarget(sample.read_bytes(), digest=expected.digest, repository=pushed)
            )
            push_code, out, err = _run_main(
                ["push", "--scan", "--report", str(report), "--scan-key", "scanner",
                 "--json", layout.oci, pushed],
                capsys,
            )  # fmt: skip
            assert push_code == code, err
            if allowed:
                result = json.loads(out)
                assert result["digest"] == expected.digest and result["signed"]
                assert result["verdict"]["allow"] and result["verdict"]["reasons"] == []
                attestation = result["verdict"]["details"]["attestation"]
                assert attestation["scanner"] == "trivy" and attestation["findings"] == 0
                assert attestation["tag"] == "sha256-" + expected.digest[7:] + ".att"
                assert verify_tag(settings, parse(pushed)).digest == expected.digest
            else:
                assert "refused" in err and all(m in err for m in messages[:3])
                with pytest.raises((UntrustedError, UnknownRepositoryError)):  # never signed
                    verify_tag(settings, parse(pushed))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
