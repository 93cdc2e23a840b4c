"""Policy scope follows content, not spelling (issue 14): each test attacks the way an adversary
would — by naming the same content another way — and must not get out of a policy's scope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.pipeline import PipelineWorld
from fixtures.policy import DIGEST, NOW, make_scan
from fixtures.webhook import WebhookServerFactory

from trustkit import refs
from trustkit.cli import main
from trustkit.errors import BadInputError, FailureKind
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence
from trustkit.model.findings import Finding, Severity
from trustkit.pipeline.check import check_image
from trustkit.policy import ImageFacts, Policy, evaluate, load_policy_text
from trustkit.policy.globs import ShortNames
from trustkit.verdict import Action, Context
from trustkit.webhook import PipelineChecker

HIGH = Finding(
    vulnerability_id="CVE-2024-0001",
    package_name="openssl",
    installed_version="1.0",
    severity=Severity.HIGH,
)


def policy(scope: list[str], rules: str = "  severity: HIGH", extra: str = "") -> Policy:
    return load_policy_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: scoped\naction: BLOCK\n"
        f"scope: {scope!r}\n{extra}rules:\n{rules}\n".replace("'", '"')
    )


def signed(digest: str, *tags: str) -> TrustEvidence:
    return TrustEvidence(
        source=EvidenceSource.TUF_COLLECTION,
        checked=True,
        verified=True,
        digest=digest,
        signers=(SignerIdentity("alice", ("a" * 64,)),),
        tags=tags,
    )


def decide(p: Policy, reference: str, trust: TrustEvidence | None = None) -> Action:
    facts = ImageFacts(
        reference=str(refs.parse(reference)),
        digest=DIGEST,
        trust=trust or TrustEvidence.not_checked(),
        scans=(make_scan((HIGH,)),),
    )
    return evaluate([p], facts, context=Context.CI, now=NOW).action


# --- a digest is scoped by every signed tag pointing at it ---------------------------------
def test_a_digest_is_scoped_by_the_signed_tags_that_point_at_it() -> None:
    p = policy(["registry.example.com/app:v2"])
    assert decide(p, "registry.example.com/app:v2") is Action.BLOCK
    by_digest = f"registry.example.com/app@{DIGEST}"
    assert decide(p, by_digest, signed(DIGEST, "v1", "v2")) is Action.BLOCK
    # the content is only ever signed as v1: v2's policy does not reach it
    assert decide(p, by_digest, signed(DIGEST, "v1")) is Action.ALLOW


def test_tag_scoped_policies_apply_to_a_digest_whose_tags_are_unknown() -> None:
    p = policy(["registry.example.com/app:v2"])
    by_digest = f"registry.example.com/app@{DIGEST}"
    assert decide(p, by_digest) is Action.BLOCK  # no trust lookup: fail closed
    unsigned = TrustEvidence(
        source=EvidenceSource.TUF_COLLECTION,
        checked=True,
        verified=False,
        digest=DIGEST,
        failure=FailureKind.UNSIGNED,
        message="not signed",
    )
    assert decide(p, by_digest, unsigned) is Action.BLOCK
    # another repository stays out of scope whatever the tag
    assert decide(p, f"registry.example.com/other@{DIGEST}") is Action.ALLOW


def test_exclusions_and_waivers_need_a_known_tag() -> None:
    excluded = policy(
        ["registry.example.com/app"], extra='exclude: ["registry.example.com/app:dev"]\n'
    )
    by_digest = f"registry.example.com/app@{DIGEST}"
    assert decide(excluded, "registry.example.com/app:dev") is Action.ALLOW
    assert decide(excluded, by_digest) is Action.BLOCK  # unknown tag: not excluded
    assert decide(excluded, by_digest, signed(DIGEST, "dev")) is Action.ALLOW
    # content signed as dev AND v1: v1 is not excluded, so the policy applies
    assert decide(excluded, by_digest, signed(DIGEST, "dev", "v1")) is Action.BLOCK

    waiver = (
        "  severity: HIGH\n  allowlist:\n    - id: CVE-2024-0001\n      reason: r\n"
        "      owner: o\n      expires: 2099-01-01\n"
        '      images: ["registry.example.com/app:v1"]'
    )
    waived = policy(["registry.example.com/app"], rules=waiver)
    assert decide(waived, "registry.example.com/app:v1") is Action.ALLOW
    assert decide(waived, by_digest) is Action.BLOCK  # what would it waive?
    assert decide(waived, by_digest, signed(DIGEST, "v1")) is Action.ALLOW
    assert decide(waived, by_digest, signed(DIGEST, "v1", "v2")) is Action.BLOCK


def test_tag_at_digest_is_scoped_by_what_is_fetched() -> None:
    """``app:v2@sha256:<d>`` fetches <d>: v2 counts only when it verifiably points at <d>."""
    p = policy(["registry.example.com/app:v1"])
    spoof = f"registry.example.com/app:v2@{DIGEST}"
    assert decide(p, spoof) is Action.BLOCK  # nothing vouches that v2 names <d>
    assert decide(p, spoof, signed(DIGEST, "v1")) is Action.BLOCK
    assert decide(p, spoof, signed(DIGEST, "v2")) is Action.ALLOW
    assert decide(p, spoof, signed("sha256:" + "cd" * 32, "v2")) is Action.BLOCK


# --- one registry, one spelling ------------------------------------------------------------
@pytest.mark.parametrize(
    ("scope", "reference"),
    [
        ("localhost:5000/team/*", "LOCALHOST:5000/team/app:v1"),
        ("LOCALHOST:5000/team/*", "localhost:5000/team/app:v1"),
        ("Registry.Example.com/team/app", "registry.example.com/team/app:v1"),
        ("alpine", "Docker.io/library/alpine:3.19"),
        ("alpine", "registry-1.docker.io/library/alpine:3.19"),
        ("alpine", "index.docker.io/alpine"),
        ("docker.io/library/alpine", "registry-1.docker.io/alpine"),
        ("registry-1.docker.io/library/*", "alpine:3.19"),
    ],
)
def test_other_spellings_of_a_registry_stay_in_scope(scope: str, reference: str) -> None:
    assert decide(policy([scope]), reference) is Action.BLOCK


def test_references_are_spelled_one_way() -> None:
    assert str(refs.parse("LOCALHOST:5000/app:v1")) == "localhost:5000/app:v1"
    assert refs.parse("registry-1.docker.io/alpine").gun == "docker.io/library/alpine"
    assert refs.parse("Docker.io/team/app").gun == "docker.io/team/app"
    # a capitalised first component without dot or port is a registry only by its capitals
    assert refs.parse("Foo/bar").domain == "Foo"


# --- end to end, against a real registry and real signed collections -----------------------


def scoped_policy(tmp_path: Path, scope: str) -> Path:
    path = tmp_path / "scoped.yaml"
    path.write_text(
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: juice-v1\naction: BLOCK\n"
        f'scope: ["{scope}"]\nrules:\n  severity: HIGH\n'
    )
    return path


def gate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["gate", *args])
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


@pytest.mark.registry
def test_gate_by_digest_does_not_escape_a_tag_scoped_policy(
    pipeline_world: PipelineWorld,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = pipeline_world.with_policies(tmp_path)
    for key, value in pipeline_world.env(settings).items():
        if key.startswith("SERVIN_"):
            monkeypatch.setenv(key, value)
    juice = pipeline_world.ref("juice")  # signed as v1, HIGH findings attested
    policy_file = scoped_policy(tmp_path, juice)
    code, out, _ = gate(capsys, "--policy", str(policy_file), juice)
    assert code == 1 and "BLOCK" in out
    by_digest = f"{juice.rsplit(':', 1)[0]}@{pipeline_world.digest('juice')}"
    code, out, _ = gate(capsys, "--policy", str(policy_file), by_digest)
    assert code == 1 and "BLOCK" in out, out


@pytest.mark.registry
def test_tag_at_digest_without_content_trust_is_scoped_by_the_fetched_digest(
    pipeline_world: PipelineWorld, tmp_path: Path
) -> None:
    settings = pipeline_world.settings.with_changes(content_trust=False)
    juice = pipeline_world.ref("juice")
    p = load_policy_text(scoped_policy(tmp_path, juice).read_text())
    repo = juice.rsplit(":", 1)[0]
    spoof = f"{repo}:not-this-one@{pipeline_world.digest('juice')}"
    verdict = check_image(settings, spoof, context=Context.PULL, policies=[p])
    assert verdict.action is Action.BLOCK, verdict.summary()
    assert [o.policy for o in verdict.policies] == ["juice-v1"]

    # the clean image by digest is signed only as v1 of another repository: out of scope
    clean = pipeline_world.ref("clean")
    by_digest = f"{clean.rsplit(':', 1)[0]}@{pipeline_world.digest('clean')}"
    assert check_image(settings, by_digest, context=Context.PULL, policies=[p]).allowed


@pytest.mark.registry
def test_an_unsigned_digest_is_in_every_tag_scoped_policy_of_its_repository(
    pipeline_world: PipelineWorld, tmp_path: Path
) -> None:
    settings = pipeline_world.settings.with_changes(content_trust=False)
    unsigned = pipeline_world.ref("unsigned")  # HIGH findings attested, never signed
    p = load_policy_text(
        scoped_policy(tmp_path, unsigned.rsplit(":", 1)[0] + ":release-*").read_text()
    )
    assert check_image(settings, unsigned, context=Context.PULL, policies=[p]).allowed
    by_digest = f"{unsigned.rsplit(':', 1)[0]}@{pipeline_world.digest('unsigned')}"
    verdict = check_image(settings, by_digest, context=Context.PULL, policies=[p])
    assert verdict.action is Action.BLOCK, verdict.summary()


# --- one glob dialect: the webhook's exemptions match as policy scopes do -------------------
def test_webhook_exemptions_use_the_policy_glob_dialect() -> None:
    from trustkit.webhook.config import WebhookConfig

    config = WebhookConfig(exempt_images=("registry.local/base/*", "docker.io/library/perl:5*"))
    assert config.image_exempt("registry.local/base/alpine:3")
    # fnmatch's '*' crossed '/': a nested repository was exempt with its parent's glob
    assert not config.image_exempt("registry.local/base/evil/miner:1")
    assert config.image_exempt("REGISTRY.LOCAL/base/alpine:3")
    assert config.image_exempt("perl:5.36")
    assert not config.image_exempt(f"perl@{DIGEST}")  # a tag glob cannot vouch for a digest
    assert not config.image_exempt("not a reference")
    with pytest.raises(BadInputError, match="exempt_images"):
        WebhookConfig(exempt_images=("UPPER/Case:[x",))


# --- short names follow unqualified_search_registries --------------------------------------
def decide_with(p: Policy, reference: str, short_names: ShortNames) -> Action:
    facts = ImageFacts(
        reference=str(refs.parse(reference)),
        digest=DIGEST,
        scans=(make_scan((HIGH,)),),
        short_names=short_names,
    )
    return evaluate([p], facts, context=Context.CI, now=NOW).action


def test_short_name_scopes_follow_the_search_registries() -> None:
    local = ShortNames.resolving(("LOCALHOST:5000",), "enforcing")
    assert decide_with(policy(["team/app"]), "localhost:5000/team/app:v1", local) is Action.BLOCK
    assert decide_with(policy(["alpine"]), "localhost:5000/alpine:3", local) is Action.BLOCK
    assert decide_with(policy(["team/*"]), "localhost:5000/team/app:v1", local) is Action.BLOCK
    # Docker's rule when the config says nothing else, or short names are disabled
    assert decide(policy(["team/app"]), "localhost:5000/team/app:v1") is Action.ALLOW
    disabled = ShortNames.resolving(("localhost:5000",), "disabled")
    assert decide_with(policy(["team/app"]), "localhost:5000/team/app:v1", disabled) is (
        Action.ALLOW
    )
    # a scope keeps Docker's reading too (the webhook resolves pods' short names to docker.io)
    assert decide_with(policy(["team/app"]), "docker.io/team/app:v1", local) is Action.BLOCK
    assert decide_with(policy(["team/app"]), "other.example/team/app:v1", local) is Action.ALLOW
    excluded = policy(["**"], extra='exclude: ["team/app"]\n')
    assert decide_with(excluded, "localhost:5000/team/app:v1", local) is Action.ALLOW
    assert decide_with(excluded, "docker.io/team/app:v1", local) is Action.BLOCK


def test_an_ambiguous_short_name_scopes_wide_and_excludes_nothing() -> None:
    two = ShortNames.resolving(("registry.a.example", "registry.b.example"), "enforcing")
    p = policy(["team/app"], extra='exclude: ["team/app:dev"]\n')
    assert decide_with(p, "registry.a.example/team/app:v1", two) is Action.BLOCK
    assert decide_with(p, "registry.b.example/team/app:v1", two) is Action.BLOCK
    assert decide_with(p, "registry.b.example/team/app:dev", two) is Action.BLOCK
    permissive = ShortNames.resolving(("registry.a.example", "registry.b.example"), "permissive")
    assert decide_with(p, "registry.a.example/team/app:dev", permissive) is Action.ALLOW
    assert decide_with(p, "registry.b.example/team/app:dev", permissive) is Action.BLOCK


@pytest.mark.registry
def test_a_short_name_scope_reaches_the_registry_short_names_resolve_to(
    pipeline_world: PipelineWorld, tmp_path: Path
) -> None:
    base = pipeline_world.settings.effective_registries_config
    doc = json.loads(base.read_text()) if base.exists() else {}
    doc["unqualified_search_registries"] = [pipeline_world.registry.host]
    config = tmp_path / "registries.json"
    config.write_text(json.dumps(doc))
    settings = pipeline_world.settings.with_changes(registries_config=config)
    juice = pipeline_world.ref("juice")
    short = juice.split("/", 1)[1].rsplit(":", 1)[0]  # t/pipeline-xxxx/juice
    p = load_policy_text(scoped_policy(tmp_path, short).read_text())
    verdict = check_image(settings, juice, context=Context.PULL, policies=[p])
    assert verdict.action is Action.BLOCK, verdict.summary()
    assert [o.policy for o in verdict.policies] == ["juice-v1"]


@pytest.mark.registry
def test_admission_by_digest_does_not_escape_a_tag_scoped_policy(
    webhook_server: WebhookServerFactory, pipeline_world: PipelineWorld, tmp_path: Path
) -> None:
    """The webhook variant of the attack: a pod naming ``repo@sha256:<d>`` where ``repo:v1``
    (signed at <d>) is blocked by a tag-scoped policy; then the webhook's own pin of the tag."""
    juice = pipeline_world.ref("juice")
    checker = PipelineChecker(pipeline_world.settings, [scoped_policy(tmp_path, juice)])
    served = webhook_server(checker)
    by_digest = f"{juice.rsplit(':', 1)[0]}@{pipeline_world.digest('juice')}"
    for image in (juice, by_digest, f"{juice}@{pipeline_world.digest('juice')}"):
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "0f6a4b1c-1111-2222-3333-444455556666",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "default",
                "operation": "CREATE",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
            },
        }
        reply = served.client(timeout=30).post("/validate", json=review)
        assert reply.status_code == 200, reply.text
        assert reply.json()["response"]["allowed"] is False, image
