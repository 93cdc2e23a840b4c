"""cosign signatures as data, verified in process: keys, the simple-signing payload, and the
check of one digest's signatures against pinned keys. No I/O beyond reading a key file, so policy
rules use it directly (the registry side is ``trustkit.sources.cosign``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from trustkit import refs
from trustkit.errors import BadInputError, FailureKind
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence
from trustkit.sources.model import SignatureMaterial

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
#: Sigstore bundle media types (v0.1 .. v0.3), as layers or as a referrer's artifactType
BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"
COSIGN_TYPE = "cosign container image signature"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ZERO_TIME = "0001-01-01T00:00:00Z"

MAX_SIGNATURES = 256  # layers per .sig manifest / referrers we read
MAX_PAYLOAD = 64 * 1024  # a simple-signing payload is a few hundred bytes
MAX_BUNDLE = 256 * 1024
MAX_KEY_FILE = 64 * 1024
#: the key schemes a cosign signature can be made with here (what cosign and skopeo verify)
COSIGN_SCHEMES = frozenset({"ecdsa-sha2-nistp256"})


def signature_tag(digest: str) -> str:
    """cosign's signature tag: ``sha256:<hex>`` -> ``sha256-<hex>.sig``."""
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64:
        raise BadInputError(f"not a sha256 digest: {digest!r}")
    return f"sha256-{hex_digest}.sig"


def identity_of(ref: refs.ImageRef) -> str:
    """The ``docker-reference`` we sign: ``host/repo:tag`` (skopeo's exact-match form)."""
    if ref.tag is None:
        raise BadInputError(f"a cosign signature identity needs a tag: {ref}")
    return f"{ref.repository}:{ref.tag}"


def simple_signing_payload(identity: str, digest: str) -> bytes:
    """The payload cosign and skopeo verify: ``critical`` with exactly the three members."""
    doc = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": {"creator": "trustkit"},
    }
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


# --- keys -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CosignKey:
    """A public key cosign signatures are verified with; ``keyid`` is trustkit's (TUF) key id,
    so a key pinned in ``require_signed`` and here is the same key."""

    name: str
    keyid: str
    public: Any  # a cryptography public key

    def verifies(self, payload: bytes, signature: bytes) -> bool:
        public = self.public
        try:
            if isinstance(public, ec.EllipticCurvePublicKey):
                algorithm = _ec_hash(public)
                try:
                    public.verify(signature, payload, ec.ECDSA(algorithm))
                    return True
                except (InvalidSignature, ValueError):
                    size = (public.curve.key_size + 7) // 8
                    if len(signature) != 2 * size:
                        return False
                    # IEEE P1363 r||s, which cosign and skopeo accept too
                    r = int.from_bytes(signature[:size], "big")
                    s = int.from_bytes(signature[size:], "big")
                    public.verify(encode_dss_signature(r, s), payload, ec.ECDSA(algorithm))
                    return True
            if isinstance(public, ed25519.Ed25519PublicKey):
                public.verify(signature, payload)
                return True
            if isinstance(public, rsa.RSAPublicKey):
                try:
                    public.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
                except InvalidSignature:
                    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO)
                    public.verify(signature, payload, pss, hashes.SHA256())
                return True
        except (InvalidSignature, ValueError):
            return False
        return False


def _ec_hash(public: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}.get(
        public.curve.key_size, hashes.SHA256()
    )


def cosign_key_from_pem(data: bytes, name: str) -> CosignKey:
    """A PEM ``PUBLIC KEY`` (cosign.pub) or a certificate's subject key."""
    from trustkit.keys.pem import load_public_key

    key = load_public_key(data, what=name)  # bounded, typed errors, the TUF key id
    from trustkit.keys.pem import public_key_pem

    public = serialization.load_pem_public_key(public_key_pem(key))
    return CosignKey(name=name, keyid=key.keyid, public=public)


def load_cosign_key(reference: str, *, base: Path | None = None) -> CosignKey:
    """A key reference as cosign spells them, offline only: a PEM file path, ``file://PATH``
    or ``env://VAR`` (the PEM in an environment variable). KMS and ``k8s://`` references
    need a network this verifier never uses: export the public key to a file instead."""
    from trustkit._fs import read_protected

    scheme, sep, rest = reference.partition("://")
    if sep and scheme == "env":
        value = os.environ.get(rest)
        if not value:
            raise BadInputError(f"cosign key {reference}: environment variable {rest} is not set")
        return cosign_key_from_pem(value.encode("utf-8"), reference)
    if sep and scheme != "file":
        raise BadInputError(
            f"cosign key {reference}: {scheme}:// keys are not read (no network); "
            "export the public key (cosign public-key --key ...) and name the file"
        )
    path = Path(rest if sep else reference).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        data = read_protected(path, MAX_KEY_FILE, what="cosign public key")
    except FileNotFoundError:
        raise BadInputError(f"cosign key {reference}: no such file {path}") from None
    return cosign_key_from_pem(data, reference)


# --- writing --------------------------------------------------------------------------------


# --- verifying ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CosignKeySource:
    """cosign key-based signatures by any of ``keys`` (a ``DigestEvidenceSource``)."""

    keys: tuple[CosignKey, ...]

    def evidence(self, material: SignatureMaterial, *, image: str | None = None) -> TrustEvidence:
        return verify_with_keys(material, self.keys, image=image)


def _check_payload(payload: bytes, digest: str) -> str | None:
    """Why this payload does not vouch for ``digest``; None when it does."""
    try:
        doc = json.loads(payload)
        critical = doc["critical"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        kind = critical["type"]
    except (ValueError, KeyError, TypeError):
        return "a payload is not a simple-signing document"
    if kind != COSIGN_TYPE:
        return f"a payload has type {str(kind)[:60]!r}"
    if signed_digest != digest:
        return f"a signature is for {str(signed_digest)[:80]}, not {digest}"
    return None


def verify_with_keys(
    material: SignatureMaterial, keys: Sequence[CosignKey], *, image: str | None = None
) -> TrustEvidence:
    """Evidence from cosign signatures of ``material.digest`` made by any of ``keys``.

    Verified when at least one signature verifies; ``signers`` lists each key that signed
    (its name and trustkit key id) once. Otherwise the failure says why, in one line."""
    digest = material.digest
    name = image or digest
    signed: dict[str, SignerIdentity] = {}
    other_digest = 0
    other_key = 0
    for layer in material.layers:
        problem = _check_payload(layer.payload, digest)
        matched = [k for k in keys if k.verifies(layer.payload, layer.signature)]
        if problem is not None:
            if matched and "not " + digest in problem:
                other_digest += 1
            continue
        if not matched:
            other_key += 1
        for key in matched:
            signed.setdefault(key.keyid, SignerIdentity(name=key.name, keyids=(key.keyid,)))
    if signed:
        return TrustEvidence(
            source=EvidenceSource.COSIGN,
            checked=True,
            verified=True,
            digest=digest,
            signers=tuple(signed.values()),
        )
    names = ", ".join(k.name for k in keys) or "no key"
    if not material.layers:
        why = "; ".join(material.problems[:2])
        message = f"{name} has no cosign signature" + (f" ({why})" if why else "")
        kind = FailureKind.UNSIGNED
    elif other_digest and not other_key:
        message = f"{name}: the cosign signature by {names} is for another digest"
        kind = FailureKind.DIGEST_MISMATCH
    else:
        count = len(material.layers)
        message = f"{name}: {count} cosign signature(s), none verifies with {names}"
        kind = FailureKind.BAD_SIGNATURE
    return TrustEvidence(
        source=EvidenceSource.COSIGN,
        checked=True,
        verified=False,
        digest=digest,
        failure=kind,
        message=message,
    )
