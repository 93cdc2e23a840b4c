"""One signature policy over every source, through the one pipeline (``check_image``: what push,
pull, hooks, gate and webhook all call): collection signers OR keyless identity, cosign key AND
keyless, each verdict naming the alternative that was met or why each one failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fixtures.cosign import put_tiny_image
from fixtures.sigstore import GITHUB_ISSUER, RELEASE_WORKFLOW, PrivateSigstore

from trustkit import refs
from trustkit.config import Settings
from trustkit.pipeline.check import check_image
from trustkit.registry.location import open_registry_location
from trustkit.registry.model import Descriptor
from trustkit.sources.cosign import (
    attach_bundle,
    attach_signature,
    cosign_key_from_pem,
    identity_of,
    simple_signing_payload,
)
from trustkit.verdict import Context


def _policy(directory: Path, name: str, rules: dict[str, object]) -> Path:
    path = directory / f"{name}.yaml"
    lines = [
        "apiVersion: trustkit.dev/v1",
        "kind: ImagePolicy",
        f"name: {name}",
        "action: BLOCK",
        "rules:",
        "  require_scan: false",
    ]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in rules.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class World:
    """Images in a real registry, signed (or not) keyless by a private Sigstore instance and
    with a cosign key; policies that name them."""

    def __init__(self, settings: Settings, host: str, sigstore: PrivateSigstore, tmp: Path):
        self.settings = settings.with_changes(content_trust=False)
        self.host = host
        self.sigstore = sigstore
        self.tmp = tmp
        self.cosign_key = ec.generate_private_key(ec.SECP256R1())
        self.cosign_pub = tmp / "release.pub"
        self.cosign_pub.write_bytes(
            self.cosign_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def image(self, name: str, *, keyless: str | None = None, cosign: bool = False) -> str:
        ref = refs.parse(f"{self.host}/policy/{name}:v1")
        location = open_registry_location(self.settings, ref)
        try:
            subject: Descriptor = put_tiny_image(location, "v1", salt=name)
            if keyless is not None:
                bundle = self.sigstore.sign_digest(subject.digest, identity=keyless)
                attach_bundle(location, subject, bundle)
            if cosign:
                payload = simple_signing_payload(identity_of(ref), subject.digest)
                signature = self.cosign_key.sign(payload, ec.ECDSA(hashes.SHA256()))
                key = cosign_key_from_pem(self.cosign_pub.read_bytes(), "release.pub")
                attach_signature(location, subject, payload, signature, key=key)
        finally:
            location.close()
        return str(ref)

    def keyless_rule(self, identity: str = RELEASE_WORKFLOW) -> dict[str, object]:
        return {
            "keyless_signed": {
                "identity": identity,
                "issuer": GITHUB_ISSUER,
                "trusted_roots": [str(self.sigstore.trusted_root_path)],
            }
        }

    def check(self, image: str, policy: Path) -> tuple[bool, str, list[str]]:
        verdict = check_image(
            self.settings, image, context=Context.PULL, policy_files=[policy],
            policies=None,
        )  # fmt: skip
        explain = [line for outcome in verdict.policies for (_, _, line) in outcome.rules]
        reasons = " | ".join(r.message for r in verdict.reasons)
        return verdict.allowed, reasons, explain


@pytest.fixture
def world(
    settings: Settings, attest_registry: str, private_sigstore: PrivateSigstore, tmp_path: Path
) -> World:
    return World(settings, attest_registry, private_sigstore, tmp_path)


def test_collection_signers_or_keyless_identity(world: World, tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        "release-or-ci",
        {
            "any_of": [
                {"require_signed": {"signers": ["alice", "bob"], "threshold": 2}},
                world.keyless_rule(),
            ]
        },
    )
    allowed, reasons, explain = world.check(
        world.image("ci-built", keyless=RELEASE_WORKFLOW), policy
    )
    assert allowed, reasons
    assert any("alternative 2 (keyless_signed) met" in line for line in explain), explain

    evil = "https://github.com/evil/repo/.github/workflows/release.yml@refs/heads/main"
    allowed, reasons, _ = world.check(world.image("evil-built", keyless=evil), policy)
    assert not allowed
    # one reason, naming why each alternative failed
    assert "none of 2 alternatives is met" in reasons and "\n" not in reasons
    assert "(1)" in reasons and "is not signed" in reasons
    assert "(2)" in reasons and "does not match" in reasons

    allowed, reasons, _ = world.check(world.image("unsigned"), policy)
    assert not allowed and "has no keyless Sigstore bundle" in reasons


def test_cosign_key_and_keyless_all_of(world: World, tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        "both",
        {"all_of": [{"cosign_signed": {"keys": [str(world.cosign_pub)]}}, world.keyless_rule()]},
    )
    allowed, reasons, explain = world.check(
        world.image("both", keyless=RELEASE_WORKFLOW, cosign=True), policy
    )
    assert allowed, reasons
    assert any("cosign-signed by" in s and "release.pub" in s for s in explain), explain

    allowed, reasons, _ = world.check(world.image("keyless-only", keyless=RELEASE_WORKFLOW), policy)
    assert not allowed
    assert "1 of 2 required rules not met" in reasons and "has no cosign signature" in reasons

    allowed, reasons, _ = world.check(world.image("cosign-only", cosign=True), policy)
    assert not allowed and "has no keyless Sigstore bundle" in reasons


def test_cosign_key_alone_refuses_another_key(world: World, tmp_path: Path) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    image = world.image("cosign-signed", cosign=True)
    good = _policy(tmp_path, "release-key", {"cosign_signed": {"keys": [str(world.cosign_pub)]}})
    bad = _policy(tmp_path, "other-key", {"cosign_signed": {"keys": [str(other)]}})
    assert world.check(image, good)[0]
    allowed, reasons, _ = world.check(image, bad)
    assert not allowed and "none verifies with" in reasons


def test_policy_file_problems_are_reported_at_load(world: World, tmp_path: Path) -> None:
    from trustkit.errors import PolicyFileError
    from trustkit.policy import load_policies

    broken = _policy(
        tmp_path,
        "broken",
        {
            "keyless_signed": {
                "identity_regex": "(",
                "issuer": GITHUB_ISSUER,
            },
        },
    )
    with pytest.raises(PolicyFileError, match="identity_regex"):
        load_policies(world.settings, extra_files=[broken])
    missing = _policy(tmp_path, "missing", {"cosign_signed": {"keys": ["nope.pub"]}})
    with pytest.raises(PolicyFileError, match="no such file"):
        load_policies(world.settings, extra_files=[missing])


def test_two_collection_signers_meet_the_first_alternative(world: World, tmp_path: Path) -> None:
    from trustkit.collections import add_signer, sign_tag
    from trustkit.keys import KeyStore

    image = world.image("release-signed")  # no keyless bundle: only the collection can vouch
    ref = refs.parse(image)
    location = open_registry_location(world.settings, ref)
    try:
        top = location.get_manifest("v1")
    finally:
        location.close()
    keys = KeyStore(world.settings)
    for name in ("alice", "bob"):
        record = keys.generate(role="delegation", name=name)
        add_signer(world.settings, ref.gun, name, [record.public_key], keystore=keys)
    sign_tag(world.settings, ref, digest=top.digest, size=top.size, keystore=keys)
    policy = _policy(
        tmp_path,
        "release-or-ci",
        {
            "any_of": [
                {"require_signed": {"signers": ["alice", "bob"], "threshold": 2}},
                world.keyless_rule(),
            ]
        },
    )
    allowed, reasons, explain = world.check(image, policy)
    assert allowed, reasons
    assert any("alternative 1 (require_signed) met" in line for line in explain), explain
