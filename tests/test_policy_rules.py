"""Policy rules as plugins: the published schema is assembled from the rules' fragments;
require_signed counts distinct keys and honours pinned keys; any_of / all_of compose
signature rules; policy reads failure kinds, never message text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fixtures.policy import DIGEST, NOW
from fixtures.trust import TrustedRepo

from trustkit.collections import add_signer
from trustkit.errors import FailureKind
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence
from trustkit.pipeline.check import check_image, trust_once_signed
from trustkit.policy import (
    RULES,
    ImageFacts,
    Policy,
    check_policy_text,
    evaluate,
    load_policy_text,
    policy_schema,
)
from trustkit.policy.rules import Rule, Stage
from trustkit.policy.schema import assembled_schema
from trustkit.verdict import Action, Context

REPO = Path(__file__).resolve().parents[1]
K1, K2, K3 = "a1" * 32, "b2" * 32, "c3" * 32
IMAGE = "registry.example.com/app:v1"


def policy(rules: str, name: str = "p") -> Policy:
    return load_policy_text(
        f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\naction: BLOCK\n"
        f"rules:\n  require_scan: false\n{rules}\n"
    )


def evidence(*signers: SignerIdentity, **changes: object) -> TrustEvidence:
    base: dict[str, object] = {
        "source": EvidenceSource.TUF_COLLECTION,
        "checked": True,
        "verified": True,
        "digest": DIGEST,
        "signers": signers,
        "tags": ("v1",),
    }
    base.update(changes)
    return TrustEvidence(**base)  # type: ignore[arg-type]


def run(p: Policy, trust: TrustEvidence):  # type: ignore[no-untyped-def]
    facts = ImageFacts(reference=IMAGE, digest=DIGEST, trust=trust)
    return evaluate([p], facts, context=Context.CI, now=NOW)


# --- the schema comes from the rules -------------------------------------------------------
def test_published_schema_is_assembled_from_the_rule_fragments() -> None:
    packaged = policy_schema()
    assert assembled_schema(packaged) == packaged, (
        "regenerate: python -m trustkit.policy.schema > trustkit/policy/policy.schema.json "
        "and copy it to docs/policy.schema.json"
    )
    assert json.loads((REPO / "docs" / "policy.schema.json").read_text()) == packaged


def test_every_rule_is_one_plugin_with_a_unique_key() -> None:
    keys = [r.key for r in RULES]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(policy_schema()["properties"]["rules"]["properties"])
    assert all(isinstance(r, Rule) and isinstance(r.stage, Stage) for r in RULES)
    # composable rules are exactly the signature-stage ones
    assert {r.key for r in RULES if r.composable} == {
        r.key for r in RULES if r.stage is Stage.SIGNATURE
    }


def test_needed_evidence_follows_the_rules() -> None:
    assert policy("  severity: HIGH").needs_scans
    assert not policy("  severity: HIGH").requires_signed
    signed_only = policy("  require_signed: true")
    assert signed_only.requires_signed and not signed_only.needs_scans
    composed = policy("  any_of:\n    - require_signed: {signers: [alice]}")
    assert composed.requires_signed


# --- require_signed counts keys, not names -------------------------------------------------
def test_one_key_in_two_delegations_does_not_make_two_signers() -> None:
    p = policy("  require_signed: {signers: [alice, bob], threshold: 2}")
    shared = run(p, evidence(SignerIdentity("alice", (K1,)), SignerIdentity("bob", (K1,))))
    assert shared.action is Action.BLOCK
    assert "distinct keys" in shared.reasons[0].message
    two = run(p, evidence(SignerIdentity("alice", (K1,)), SignerIdentity("bob", (K2,))))
    assert two.action is Action.ALLOW
    # bob holds K1 and K2, alice only K1: bob can be credited with K2 (a matching, not a count)
    overlap = run(p, evidence(SignerIdentity("alice", (K1,)), SignerIdentity("bob", (K1, K2))))
    assert overlap.action is Action.ALLOW


def test_three_signers_two_keys_is_two() -> None:
    p = policy("  require_signed: {signers: [alice, bob, carol], threshold: 3}")
    result = run(
        p,
        evidence(
            SignerIdentity("alice", (K1,)),
            SignerIdentity("bob", (K2,)),
            SignerIdentity("targets/carol", (K1, K2)),
        ),
    )
    assert result.action is Action.BLOCK
    assert "2 of the required signers" in result.reasons[0].message


def test_pinned_key_ids(tmp_path: Path) -> None:
    p = policy(f"  require_signed: {{keys: [{K1}, {K2}], threshold: 2}}")
    assert run(p, evidence(SignerIdentity("a", (K1,)), SignerIdentity("b", (K2,)))).action is (
        Action.ALLOW
    )
    one = run(p, evidence(SignerIdentity("a", (K1,)), SignerIdentity("b", (K3,))))
    assert one.action is Action.BLOCK and "1 of the pinned keys" in one.reasons[0].message
    # named signers with pinned keys: a signer counts only through a pinned key
    named = policy(f"  require_signed: {{signers: [alice, bob], threshold: 2, keys: [{K1}, {K2}]}}")
    rogue = run(named, evidence(SignerIdentity("alice", (K1,)), SignerIdentity("bob", (K3,))))
    assert rogue.action is Action.BLOCK
    # a source without key ids cannot satisfy a pin
    legacy = run(named, evidence(SignerIdentity("alice"), SignerIdentity("bob")))
    assert legacy.action is Action.BLOCK


def test_pinned_key_from_a_pem_file(tmp_path: Path) -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "release.pub").write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    text = (
        "apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: p\naction: BLOCK\n"
        "rules:\n  require_scan: false\n  require_signed: {keys: [release.pub]}\n"
    )
    source = tmp_path / "p.yaml"
    p = load_policy_text(text, source=source)
    requirement = p.require_signed
    assert requirement is not None
    (pinned,) = requirement.keys
    assert run(p, evidence(SignerIdentity("ci", (pinned.keyid,)))).action is Action.ALLOW
    assert run(p, evidence(SignerIdentity("ci", (K1,)))).action is Action.BLOCK
    _, problems = check_policy_text(text.replace("release.pub", "missing.pub"), source=source)
    assert problems and "neither a key id" in problems[0].message


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ("  require_signed: {threshold: 2}", "needs a signers list"),
        (f"  require_signed: {{keys: [{K1}], threshold: 2}}", "only 1 key(s) are pinned"),
        ("  require_signed: {signers: [alice], keys: [nope.pub]}", "neither a key id"),
        ("  any_of: [{require_signd: true}]", "unknown key 'require_signd'"),
        ("  any_of: [{severity: HIGH}]", "unknown key 'severity'"),
    ],
)
def test_signature_rule_mistakes_are_reported(rules: str, fragment: str) -> None:
    text = (
        f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: p\naction: BLOCK\nrules:\n{rules}\n"
    )
    policy_obj, problems = check_policy_text(text)
    assert policy_obj is None
    assert any(fragment in p.message for p in problems), problems


# --- failure kinds, not messages -----------------------------------------------------------
def test_failure_kind_decides_the_wording_not_the_message_text() -> None:
    p = policy("  require_signed: true")
    expired = evidence(
        verified=False, failure=FailureKind.EXPIRED, message="timestamp expired (not signed?)"
    )
    reason = run(p, expired).reasons[0]
    assert reason.message.startswith("policy p: registry.example.com/app:v1 is not signed: ")
    unsigned = evidence(
        verified=False, failure=FailureKind.UNSIGNED, message="tag v1 of app is not signed"
    )
    assert run(p, unsigned).reasons[0].message == "policy p: tag v1 of app is not signed"


# --- composition ---------------------------------------------------------------------------
def test_any_of_names_the_alternative_that_was_met_or_why_each_failed() -> None:
    p = policy(
        "  any_of:\n"
        "    - require_signed: {signers: [alice, bob], threshold: 2}\n"
        f"    - require_signed: {{keys: [{K3}]}}"
    )
    (outcome,) = run(p, evidence(SignerIdentity("ci", (K3,)))).outcomes
    rule, passed, detail = outcome.rules[-1]
    assert (rule, passed) == ("any_of", True) and "alternative 2" in detail
    failed = run(p, evidence(SignerIdentity("alice", (K1,))))
    assert failed.action is Action.BLOCK
    message = failed.reasons[0].message
    assert "none of 2 alternatives" in message and "(1)" in message and "(2)" in message


def test_all_of_needs_every_rule() -> None:
    p = policy(
        "  all_of:\n"
        "    - require_signed: {signers: [alice]}\n"
        f"    - require_signed: {{keys: [{K2}]}}"
    )
    assert run(p, evidence(SignerIdentity("alice", (K2,)))).action is Action.ALLOW
    half = run(p, evidence(SignerIdentity("alice", (K1,))))
    assert half.action is Action.BLOCK and "1 of 2 required rules" in half.reasons[0].message


# --- end to end over a real collection -----------------------------------------------------
def test_a_key_shared_by_two_signers_does_not_meet_a_threshold_of_two(
    trusted_repo: TrustedRepo,
) -> None:
    """The review's attack: the same key added to alice's and bob's delegations, then one
    signature; ``require_signed: {signers: [alice, bob], threshold: 2}`` must not be met."""
    repo = trusted_repo
    add_signer(repo.settings, repo.gun, "bob", [repo.signer.public_key], keystore=repo.keystore)
    repo.sign("v1")
    two = policy("  require_signed: {signers: [alice, bob], threshold: 2}")
    verdict = check_image(repo.settings, str(repo.tag("v1")), context=Context.PULL, policies=[two])
    assert verdict.action is Action.BLOCK, verdict.summary()
    assert "a key counts once" in verdict.reasons[0].message
    assert verdict.evidence is not None and len(verdict.evidence.keyids) == 1

    # a second signer with a key of its own does meet it
    carol = repo.keystore.generate(role="delegation", name="carol")
    add_signer(repo.settings, repo.gun, "carol", [carol.public_key], keystore=repo.keystore)
    repo.sign("v2")
    other = policy("  require_signed: {signers: [alice, carol], threshold: 2}", name="q")
    verdict = check_image(
        repo.settings, str(repo.tag("v2")), context=Context.PULL, policies=[other]
    )
    assert verdict.action is Action.ALLOW, verdict.summary()
    pinned = policy(f"  require_signed: {{keys: [{carol.keyid}]}}", name="pinned")
    assert check_image(
        repo.settings, str(repo.tag("v2")), context=Context.PULL, policies=[pinned]
    ).allowed
    stranger = policy(f"  require_signed: {{keys: [{K1}]}}", name="stranger")
    assert not check_image(
        repo.settings, str(repo.tag("v2")), context=Context.PULL, policies=[stranger]
    ).allowed


def test_the_push_gate_counts_the_keys_the_push_will_sign_with(trusted_repo: TrustedRepo) -> None:
    repo = trusted_repo
    digest = "sha256:" + "ee" * 32
    granted = trust_once_signed(repo.settings, repo.tag("v9"), digest, 10)
    assert granted.keyids == frozenset({repo.signer.keyid})
    pinned = policy(f"  require_signed: {{keys: [{repo.signer.keyid}]}}")

    def at_push(p: Policy) -> Action:
        return check_image(
            repo.settings,
            f"{repo.tag('v9')}@{digest}",
            context=Context.PUSH,
            policies=[p],
            require_trust=False,
            trust=granted,
        ).action

    assert at_push(pinned) is Action.ALLOW
    add_signer(repo.settings, repo.gun, "bob", [repo.signer.public_key], keystore=repo.keystore)
    granted = trust_once_signed(repo.settings, repo.tag("v9"), digest, 10)
    two = policy("  require_signed: {signers: [alice, bob], threshold: 2}", name="two")
    assert at_push(two) is Action.BLOCK  # as the pull will: one key, two names


def test_a_scanner_key_one_policy_names_does_not_count_for_another() -> None:
    """Issue 14: one policy's trusted_scanners made its key count for every other policy."""
    from fixtures.policy import SCANNER_KEYID, make_scan

    outsider = "d4" * 32

    def scan_policy(name: str, extra: str = "") -> Policy:
        return load_policy_text(
            f"apiVersion: trustkit.dev/v1\nkind: ImagePolicy\nname: {name}\naction: BLOCK\n"
            f"rules:\n  severity: HIGH\n{extra}"
        )

    names_it = scan_policy("names-it", f"  trusted_scanners: [{outsider}]\n")
    store_only = scan_policy("store-only")
    facts = ImageFacts(
        reference=IMAGE,
        digest=DIGEST,
        trust=evidence(),
        scans=(make_scan((), keyid=outsider),),
        store_scanner_keyids=frozenset({SCANNER_KEYID}),
    )
    result = evaluate([names_it, store_only], facts, context=Context.CI, now=NOW)
    assert [(o.policy, o.action) for o in result.outcomes] == [
        ("names-it", Action.ALLOW),
        ("store-only", Action.BLOCK),
    ]
    reasons = {r.rule: r.message for r in result.reasons}
    assert "names no trusted_scanners" in reasons["trusted_scanners"]
    assert "names no trusted_scanners" in reasons["require_scan"]
    # the key store's scanner keys are not trusted implicitly either (issue 14): loading a
    # published demo key must not make it count for a policy that names no key
    stored = ImageFacts(
        reference=IMAGE,
        digest=DIGEST,
        trust=evidence(),
        scans=(make_scan((), keyid=SCANNER_KEYID),),
        store_scanner_keyids=frozenset({SCANNER_KEYID}),
    )
    outcome = evaluate([store_only], stored, context=Context.CI, now=NOW)
    assert outcome.action is Action.BLOCK
    assert outcome.reasons[0].rule == "trusted_scanners"
