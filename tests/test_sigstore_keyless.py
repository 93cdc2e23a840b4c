"""Keyless Sigstore verification, offline: the real public sample bundles against the roots the
sigstore package ships, and image bundles from a private Sigstore instance (tests/fixtures/
sigstore.py) attached to images in a real registry, accepted for the right identity and issuer
and refused, each with one line, for everything an attacker could change."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fixtures.cosign import put_tiny_image
from fixtures.sigstore import GITHUB_ISSUER, RELEASE_WORKFLOW, PrivateSigstore

from trustkit import refs
from trustkit.config import Settings
from trustkit.errors import BadInputError, FailureKind
from trustkit.registry.location import open_registry_location
from trustkit.registry.model import Descriptor
from trustkit.sources.cosign import attach_bundle, read_material
from trustkit.sources.sigstore import (
    BundleRefused,
    KeylessIdentity,
    TrustedRootFile,
    load_trusted_root,
    verify_bundle,
    verify_keyless,
)

RIGHT = KeylessIdentity(GITHUB_ISSUER, identity=RELEASE_WORKFLOW)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything that tries to reach Rekor, Fulcio or a TUF repository fails loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# --- the real public bundles ------------------------------------------------------------------
def test_real_public_bundle_verifies_offline_with_the_shipped_root(
    shared_dir: Path, no_network: None
) -> None:
    samples = shared_dir / "samples" / "sigstore"
    data = (samples / "bundle_v3_github.whl").read_bytes()
    bundle = (samples / "bundle_v3_github.whl.sigstore").read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    workflow = (
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    )
    public = load_trusted_root("public")
    assert verify_bundle(
        bundle, digest, KeylessIdentity(GITHUB_ISSUER, identity=workflow), [public]
    )
    regex = KeylessIdentity(GITHUB_ISSUER, identity_regex=r"https://github\.com/trailofbits/.+")
    assert verify_bundle(bundle, digest, regex, [public]) == workflow
    with pytest.raises(BundleRefused, match=r"signature does not match|chain"):
        verify_bundle(bundle, digest, KeylessIdentity(GITHUB_ISSUER, identity=workflow),
                      [load_trusted_root("public-staging")])  # fmt: skip
    # the staging sample: an e-mail identity through GitHub's OAuth issuer
    staged = (samples / "bundle_v3.txt.sigstore").read_bytes()
    staged_digest = "sha256:" + hashlib.sha256((samples / "bundle_v3.txt").read_bytes()).hexdigest()
    email = KeylessIdentity("https://github.com/login/oauth", identity="william@yossarian.net")
    assert verify_bundle(staged, staged_digest, email, [load_trusted_root("public-staging")])


def test_identity_needs_exactly_one_form_and_a_valid_regex() -> None:
    with pytest.raises(BadInputError):
        KeylessIdentity(GITHUB_ISSUER)
    with pytest.raises(BadInputError):
        KeylessIdentity(GITHUB_ISSUER, identity="a", identity_regex="a")
    with pytest.raises(BadInputError, match="identity_regex"):
        KeylessIdentity(GITHUB_ISSUER, identity_regex="(")


def test_trusted_root_must_be_a_trusted_root(tmp_path: Path) -> None:
    bogus = tmp_path / "root.json"
    bogus.write_text('{"mediaType": "nope"}')
    with pytest.raises(BadInputError, match="trusted root"):
        load_trusted_root(str(bogus))
    with pytest.raises(BadInputError, match="no such file"):
        load_trusted_root(str(tmp_path / "missing.json"))


# --- a private instance, bundles attached to images in a registry ----------------------------
@pytest.fixture(scope="module")
def private_root(private_sigstore: PrivateSigstore) -> TrustedRootFile:
    return load_trusted_root(str(private_sigstore.trusted_root_path))


class Image:
    def __init__(self, settings: Settings, host: str, name: str) -> None:
        self.ref = refs.parse(f"{host}/keyless/{name}:v1")
        self.location = open_registry_location(settings, self.ref)
        self.descriptor: Descriptor = put_tiny_image(self.location, "v1", salt=name)

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    def attach(self, bundle: bytes) -> None:
        attach_bundle(self.location, self.descriptor, bundle)

    def evidence(self, wanted: KeylessIdentity, roots: list[TrustedRootFile]) -> object:
        return verify_keyless(read_material(self.location, self.digest), wanted, roots,
                              image=str(self.ref))  # fmt: skip


@pytest.fixture
def image(
    settings: Settings, attest_registry: str, request: pytest.FixtureRequest
) -> Iterator[Image]:
    made = Image(settings, attest_registry, request.node.name.replace("_", "-")[-60:].strip("-"))
    yield made
    made.location.close()


def _refused(image: Image, wanted: KeylessIdentity, roots: list[TrustedRootFile]) -> str:
    evidence = image.evidence(wanted, roots)
    assert not evidence.verified, evidence  # type: ignore[attr-defined]
    message: str = evidence.message  # type: ignore[attr-defined]
    assert "\n" not in message and str(image.ref) in message
    return message


def test_right_identity_and_issuer_accepted(
    image: Image, private_sigstore: PrivateSigstore, private_root: TrustedRootFile
) -> None:
    image.attach(private_sigstore.sign_digest(image.digest))
    evidence = image.evidence(RIGHT, [private_root])
    assert evidence.verified and evidence.signer_names == (RELEASE_WORKFLOW,)  # type: ignore[attr-defined]
    regex = KeylessIdentity(
        GITHUB_ISSUER, identity_regex=r"https://github\.com/org/repo/.+@refs/heads/main"
    )
    assert image.evidence(regex, [private_root]).verified  # type: ignore[attr-defined]
    # a regex must match the whole identity, not a part of it
    partial = KeylessIdentity(GITHUB_ISSUER, identity_regex=r"https://github\.com/org/repo")
    assert "does not match" in _refused(image, partial, [private_root])


def test_wrong_identity_refused(
    image: Image, private_sigstore: PrivateSigstore, private_root: TrustedRootFile
) -> None:
    image.attach(
        private_sigstore.sign_digest(
            image.digest,
            identity="https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main",
        )
    )
    assert "does not match" in _refused(image, RIGHT, [private_root])


def test_wrong_issuer_refused(
    image: Image, private_sigstore: PrivateSigstore, private_root: TrustedRootFile
) -> None:
    image.attach(private_sigstore.sign_digest(image.digest, issuer="https://accounts.google.com"))
    assert "issuer is https://accounts.google.com" in _refused(image, RIGHT, [private_root])


def test_certificate_outside_its_validity_at_log_time_refused(
    image: Image, private_sigstore: PrivateSigstore, private_root: TrustedRootFile
) -> None:
    # the certificate lives 10 minutes; the log integrated the entry 20 minutes after issue
    image.attach(private_sigstore.sign_digest(image.digest, logged_after=timedelta(minutes=20)))
    message = _refused(image, RIGHT, [private_root])
    assert "expired" in message or "chain" in message


def test_tampered_bundle_refused(
    image: Image, private_sigstore: PrivateSigstore, private_root: TrustedRootFile
) -> None:
    bundle = json.loads(private_sigstore.sign_digest(image.digest))
    signature = bytearray(base64.b64decode(bundle["messageSignature"]["signature"]))
    signature[-1] ^= 0x01
    bundle["messageSignature"]["signature"] = base64.b64encode(bytes(signature)).decode()
    image.attach(json.dumps(bundle).encode())
    assert "keyless bundle" in _refused(image, RIGHT, [private_root])
    # and a log entry whose body was edited no longer matches its inclusion proof
    other = json.loads(private_sigstore.sign_digest(image.digest))
    entry = other["verificationMaterial"]["tlogEntries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    body["spec"]["data"]["hash"]["value"] = "00" * 32
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()
    with pytest.raises(BundleRefused):
        verify_bundle(json.dumps(other).encode(), image.digest, RIGHT, [private_root])


def test_bundle_for_another_digest_refused(
    image: Image, private_sigstore: PrivateSigstore, private_root: TrustedRootFile
) -> None:
    image.attach(private_sigstore.sign_digest("sha256:" + "12" * 32))
    assert "digest mismatch" in _refused(image, RIGHT, [private_root])


def test_bundle_without_inclusion_proof_refused(
    image: Image, private_sigstore: PrivateSigstore, private_root: TrustedRootFile
) -> None:
    image.attach(private_sigstore.sign_digest(image.digest, proof=False))
    assert "inclusion proof" in _refused(image, RIGHT, [private_root])


def test_another_instances_root_refuses_and_unsigned_is_unsigned(
    image: Image, private_sigstore: PrivateSigstore, tmp_path: Path
) -> None:
    stranger = load_trusted_root(str(PrivateSigstore(tmp_path / "stranger").trusted_root_path))
    evidence = image.evidence(RIGHT, [stranger])
    assert evidence.failure is FailureKind.UNSIGNED  # type: ignore[attr-defined]
    image.attach(private_sigstore.sign_digest(image.digest))
    _refused(image, RIGHT, [stranger])


# --- a second, independent verifier: sigstore-go (Debian 13's sigstore-go package) -----------
def _sigstore_go() -> Path:
    from fixtures.cosign import _peer_env

    path = _peer_env().get("SIGSTORE_GO")
    if not path or not Path(path).is_file():
        pytest.skip("sigstore-go is not installed (scripts/install-peers.sh)")
    return Path(path)


def _go_verify(
    tool: Path, bundle: Path, root: Path, digest: str, identity: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool), "-trustedrootJSONpath", str(root), "-expectedIssuer", GITHUB_ISSUER,
         "-expectedSAN", identity, *args, "-artifact-digest", digest.partition(":")[2],
         str(bundle)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(bundle.parent), "HTTPS_PROXY": "http://127.0.0.1:9"},
    )  # fmt: skip


@pytest.mark.peer
def test_sigstore_go_accepts_the_private_instances_bundles(
    image: Image, private_sigstore: PrivateSigstore, tmp_path: Path
) -> None:
    tool = _sigstore_go()
    root = private_sigstore.trusted_root_path
    good = tmp_path / "good.json"
    good.write_bytes(private_sigstore.sign_digest(image.digest))
    done = _go_verify(tool, good, root, image.digest, RELEASE_WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    # and sigstore-go refuses what trustkit refuses
    refused = _go_verify(
        tool, good, root, image.digest, "https://github.com/evil/x@refs/heads/main"
    )
    assert refused.returncode != 0 and "SAN" in refused.stdout + refused.stderr
    other = _go_verify(tool, good, root, "sha256:" + "12" * 32, RELEASE_WORKFLOW)
    assert other.returncode != 0
    late = tmp_path / "late.json"
    late.write_bytes(private_sigstore.sign_digest(image.digest, logged_after=timedelta(minutes=20)))
    assert _go_verify(tool, late, root, image.digest, RELEASE_WORKFLOW).returncode != 0


# sigstore-go 0.7.1's oci-image-verification example reads only cosign's legacy keyless layout
# (a .sig layer with certificate and SET annotations, no inclusion proof: what sigstore-python
# refuses), not bundles attached as referrers, so the cross-check verifies the bundles themselves.
