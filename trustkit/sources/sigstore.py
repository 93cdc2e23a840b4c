"""Keyless Sigstore signatures: bundles whose Fulcio-style certificate binds an OIDC identity,
recorded in a transparency log, verified with the ``sigstore`` package, offline.

Trusted roots are FILES (``trusted_root.json``): the public-good instance's root the package
ships (``public`` / ``public-staging``), or a private instance's. Nothing here refreshes a TUF
repository or calls Rekor: the package's embedded TUF root expired on 2026-11-20, and a verifier
that needs the network to say no is one an attacker can silence.

What a bundle must show to count (all checked by ``sigstore.verify.Verifier``): a certificate
chaining to the root's certificate authority at the log's integrated time, an embedded SCT from a
CT log of the root, a log entry whose inclusion proof and signed checkpoint verify under a log key
of the root (bundles without one are refused), the identity and issuer the policy names, and a
signature over this image's manifest digest (a message signature over the digest, as
``cosign sign --new-bundle-format`` and sigstore-go's OCI verification use it, or a DSSE in-toto
statement whose subject is the digest).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit.errors import BadInputError, FailureKind
from trustkit.model import EvidenceSource, SignerIdentity, TrustEvidence
from trustkit.sources.model import SignatureMaterial

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier


BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
MAX_TRUSTED_ROOT = 1024 * 1024
MAX_BUNDLES = 64  # bundles verified per image: each costs a few signature checks
_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"  # raw UTF-8 (Fulcio's original extension)
_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"  # DER UTF8String
_IN_TOTO = "application/vnd.in-toto+json"
#: names for the trusted roots sigstore-python ships (the public-good instance)
SHIPPED_ROOTS = {
    "public": "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev",
    "public-staging": "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev",
}


@dataclass(frozen=True)
class KeylessIdentity:
    """Who may have signed: a certificate identity (exact or a regular expression matched
    against the whole SAN) issued by exactly ``issuer``."""

    issuer: str
    identity: str | None = None
    identity_regex: str | None = None

    def __post_init__(self) -> None:
        if (self.identity is None) == (self.identity_regex is None):
            raise BadInputError("a keyless identity needs exactly one of identity, identity_regex")
        if self.identity_regex is not None:
            try:
                re.compile(self.identity_regex)
            except re.error as exc:
                raise BadInputError(f"identity_regex {self.identity_regex!r}: {exc}") from None

    def describe(self) -> str:
        who = self.identity if self.identity is not None else f"/{self.identity_regex}/"
        return f"{who} issued by {self.issuer}"

    def matches(self, sans: Sequence[str]) -> str | None:
        """The SAN that matches, if any."""
        for san in sans:
            if self.identity is not None and san == self.identity:
                return san
            if self.identity_regex is not None and re.fullmatch(self.identity_regex, san):
                return san
        return None


@dataclass(frozen=True)
class TrustedRootFile:
    """A trusted root loaded from its file (read once, when the policy is parsed)."""

    name: str
    root: TrustedRoot

    def verifier(self) -> Verifier:
        from sigstore.verify import Verifier

        return Verifier(trusted_root=self.root)


def shipped_root_path(name: str) -> Path:
    import sigstore

    return Path(sigstore.__file__).parent / "_store" / SHIPPED_ROOTS[name] / "trusted_root.json"


def load_trusted_root(reference: str, *, base: Path | None = None) -> TrustedRootFile:
    """``public`` / ``public-staging`` (the roots the sigstore package ships) or a path to a
    ``trusted_root.json`` (relative to ``base``)."""
    from trustkit._fs import read_protected

    if reference in SHIPPED_ROOTS:
        path = shipped_root_path(reference)
        data = path.read_bytes()
    else:
        path = Path(reference).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            data = read_protected(path, MAX_TRUSTED_ROOT, what="trusted root")
        except FileNotFoundError:
            raise BadInputError(f"trusted root {reference}: no such file {path}") from None
    from sigstore.models import TrustedRoot
    from sigstore_models.trustroot.v1 import TrustedRoot as TrustedRootMessage

    try:
        root = TrustedRoot(TrustedRootMessage.from_json(data))
    except Exception as exc:  # the package raises pydantic and ValueError alike
        raise BadInputError(f"trusted root {reference} is not a trusted_root.json: {exc}") from None
    return TrustedRootFile(name=reference, root=root)


class _IdentityPolicy:
    """A sigstore ``VerificationPolicy``: the issuer extension equals ``issuer`` and a SAN
    matches the identity (exact or regular expression)."""

    def __init__(self, wanted: KeylessIdentity) -> None:
        self.wanted = wanted
        self.matched: str | None = None

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError

        issuer = certificate_issuer(cert)
        if issuer != self.wanted.issuer:
            raise VerificationError(f"issuer is {issuer or 'missing'}, not {self.wanted.issuer}")
        sans = certificate_identities(cert)
        matched = self.wanted.matches(sans)
        if matched is None:
            raise VerificationError(
                f"identity {', '.join(sans) or 'missing'} does not match "
                f"{self.wanted.describe().split(' issued by ')[0]}"
            )
        self.matched = matched


def certificate_issuer(cert: Certificate) -> str | None:
    from cryptography import x509

    for ext in cert.extensions:
        if ext.oid.dotted_string == _ISSUER_V2 and isinstance(
            ext.value, x509.UnrecognizedExtension
        ):
            raw = ext.value.value
            # DER UTF8String: tag 0x0c, short or long length
            if len(raw) >= 2 and raw[0] == 0x0C:
                offset = 2 if raw[1] < 0x80 else 2 + (raw[1] & 0x7F)
                return raw[offset:].decode("utf-8", "replace")
    for ext in cert.extensions:
        if ext.oid.dotted_string == _ISSUER_V1 and isinstance(
            ext.value, x509.UnrecognizedExtension
        ):
            return ext.value.value.decode("utf-8", "replace")
    return None


def certificate_identities(cert: Certificate) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[str] = list(san.get_values_for_type(x509.RFC822Name))
    out.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:240] or type(exc).__name__


def verify_bundle(
    data: bytes, digest: str, wanted: KeylessIdentity, roots: Sequence[TrustedRootFile]
) -> str:
    """The identity that signed ``digest`` in this bundle; raises ``BundleRefused`` with one
    line saying why not."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore_models.common.v1 import HashAlgorithm

    _precheck(data)
    try:
        bundle = Bundle.from_json(data)
    except Exception as exc:  # malformed JSON, missing proof: all "not a usable bundle"
        raise BundleRefused(f"unusable bundle: {_one_line(exc)[:120]}") from None
    algorithm, _, hex_digest = digest.partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64:
        raise BundleRefused(f"not a sha256 digest: {digest}")
    reasons: list[str] = []
    for root in roots:
        policy = _IdentityPolicy(wanted)
        try:
            verifier = root.verifier()
            if bundle._dsse_envelope is not None:
                payload_type, payload = verifier.verify_dsse(bundle, policy)
                _check_statement(payload_type, payload, hex_digest)
            else:
                hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(hex_digest))
                verifier.verify_artifact(hashed, bundle, policy)
        except (SigstoreError, ValueError) as exc:
            reasons.append(_one_line(exc))
            continue
        assert policy.matched is not None
        return policy.matched
    raise BundleRefused(reasons[0] if len(set(reasons)) == 1 else "; ".join(reasons))


def _precheck(data: bytes) -> None:
    """Say plainly what the package would say in a page of validation errors."""
    try:
        doc = json.loads(data)
        entries = doc["verificationMaterial"]["tlogEntries"]
    except (ValueError, KeyError, TypeError):
        raise BundleRefused("unusable bundle: not a Sigstore bundle document") from None
    if not isinstance(entries, list) or not entries:
        raise BundleRefused("the bundle has no transparency-log entry")
    for entry in entries:
        proof = entry.get("inclusionProof") if isinstance(entry, dict) else None
        if not isinstance(proof, dict) or not proof.get("checkpoint"):
            raise BundleRefused(
                "the log entry has no inclusion proof with a checkpoint (an older bundle "
                "format: sign again with a current cosign)"
            )


def _check_statement(payload_type: str, payload: bytes, hex_digest: str) -> None:
    from sigstore.errors import VerificationError

    if payload_type != _IN_TOTO:
        raise VerificationError(f"DSSE payload type {payload_type[:60]!r} is not in-toto")
    try:
        subjects = json.loads(payload)["subject"]
        digests = {str(s["digest"]["sha256"]) for s in subjects}
    except (ValueError, KeyError, TypeError):
        raise VerificationError("DSSE payload is not an in-toto statement") from None
    if hex_digest not in digests:
        raise VerificationError(f"the statement's subject is not sha256:{hex_digest}")


@dataclass(frozen=True)
class KeylessSource:
    """Keyless bundles by ``identity`` under ``roots`` (a ``DigestEvidenceSource``)."""

    identity: KeylessIdentity
    roots: tuple[TrustedRootFile, ...]

    def evidence(self, material: SignatureMaterial, *, image: str | None = None) -> TrustEvidence:
        return verify_keyless(material, self.identity, self.roots, image=image)


class BundleRefused(Exception):
    """One bundle did not vouch for the digest (internal: becomes evidence)."""


def verify_keyless(
    material: SignatureMaterial,
    wanted: KeylessIdentity,
    roots: Sequence[TrustedRootFile],
    *,
    image: str | None = None,
) -> TrustEvidence:
    """Evidence from the keyless bundles attached to ``material.digest``: verified when one
    bundle shows ``wanted`` signed this digest under one of ``roots``."""
    name = image or material.digest
    reasons: list[str] = []
    for artifact in material.bundles[:MAX_BUNDLES]:
        try:
            identity = verify_bundle(artifact.data, material.digest, wanted, roots)
        except BundleRefused as exc:
            reasons.append(str(exc))
            continue
        return TrustEvidence(
            source=EvidenceSource.SIGSTORE,
            checked=True,
            verified=True,
            digest=material.digest,
            signers=(SignerIdentity(name=identity, role=wanted.issuer),),
        )
    if not material.bundles:
        why = "; ".join(material.problems[:2])
        message = f"{name} has no keyless Sigstore bundle" + (f" ({why})" if why else "")
        return TrustEvidence(
            source=EvidenceSource.SIGSTORE,
            checked=True,
            verified=False,
            digest=material.digest,
            failure=FailureKind.UNSIGNED,
            message=message,
        )
    count = len(material.bundles)
    first = reasons[0] if reasons else "not verified"
    message = f"{name}: {count} keyless bundle(s), none by {wanted.describe()}: {first}"
    return TrustEvidence(
        source=EvidenceSource.SIGSTORE,
        checked=True,
        verified=False,
        digest=material.digest,
        failure=FailureKind.BAD_SIGNATURE,
        message=message,
    )
