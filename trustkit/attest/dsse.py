"""DSSE envelopes around in-toto statements: sign with a scanner key, verify against trusted keys.

Signing uses ``securesystemslib.dsse.Envelope``. Verification is our own loop over the same PAE
because DSSE makes ``keyid`` an optional hint: cosign writes ``"keyid": ""``, which
securesystemslib's ``Envelope.verify`` would never match. Every signature is tried against every
trusted key; the first that verifies names the signer. ECDSA signatures are accepted as DER (what
cosign and securesystemslib write) or raw ``r||s`` (the DSSE specification's test vector).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from securesystemslib import exceptions as sslib_exceptions
from securesystemslib.dsse import Envelope

from trustkit.attest.model import VerifiedScan
from trustkit.attest.statement import read_statement
from trustkit.errors import AttestationError
from trustkit.keys import Key, Signature, Signer

PAYLOAD_TYPE = "application/vnd.in-toto+json"
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
#: a report may be 64 MiB; base64 grows it by a third, plus the statement around it
MAX_ENVELOPE_BYTES = 96 * 1024 * 1024
MAX_SIGNATURES = 16


def sign_statement(statement: dict[str, Any], signer: Signer) -> bytes:
    """The DSSE envelope (JSON bytes) of ``statement`` signed by ``signer``."""
    payload = json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    return json.dumps(envelope.to_dict(), separators=(",", ":")).encode("utf-8")


def envelope_digest(envelope_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(envelope_bytes).hexdigest()


def open_envelope(
    envelope_bytes: bytes,
    trusted_keys: Sequence[Key],
    *,
    payload_type: str | None = PAYLOAD_TYPE,
) -> tuple[bytes, str]:
    """(payload, keyid of the trusted key that signed it); AttestationError otherwise."""
    if len(envelope_bytes) > MAX_ENVELOPE_BYTES:
        raise AttestationError(
            f"attestation envelope is {len(envelope_bytes)} bytes, "
            f"over the {MAX_ENVELOPE_BYTES}-byte limit"
        )
    try:
        raw = json.loads(envelope_bytes)
    except (ValueError, RecursionError):
        raise AttestationError("attestation envelope is not valid JSON") from None
    if not isinstance(raw, dict):
        raise AttestationError("attestation envelope is not a JSON object")
    got_type = raw.get("payloadType")
    if not isinstance(got_type, str) or (payload_type is not None and got_type != payload_type):
        raise AttestationError(f"unexpected DSSE payloadType {got_type!r}")
    payload = _b64(raw.get("payload"), "payload")
    signatures = raw.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise AttestationError("attestation envelope has no signatures")
    if len(signatures) > MAX_SIGNATURES:
        raise AttestationError(f"attestation envelope has over {MAX_SIGNATURES} signatures")
    if not trusted_keys:
        raise AttestationError("no trusted scanner keys to verify the attestation with")
    pae = Envelope(payload=payload, payload_type=got_type, signatures={}).pae()
    for entry in signatures:
        if not isinstance(entry, dict):
            raise AttestationError("attestation envelope has a malformed signature entry")
        sig = _b64(entry.get("sig"), "signature")
        for key in trusted_keys:
            if _verifies(key, sig, pae):
                return payload, key.keyid
    raise AttestationError(
        "attestation signature does not verify with any trusted scanner key "
        "(unknown signer or tampered content)"
    )


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise AttestationError(f"attestation envelope {what} is missing or not a string")
    # DSSE allows URL-safe base64 and missing padding; anything else is refused
    text = value.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AttestationError(f"attestation envelope {what} is not base64") from None


def _verifies(key: Key, sig: bytes, pae: bytes) -> bool:
    candidates = [sig]
    if key.keytype == "ecdsa" and len(sig) in (64, 96, 132):  # raw r||s -> DER
        half = len(sig) // 2
        r, s = int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")
        candidates.append(encode_dss_signature(r, s))
    for candidate in candidates:
        try:
            key.verify_signature(Signature(key.keyid, candidate.hex()), pae)
            return True
        except (sslib_exceptions.UnverifiedSignatureError, sslib_exceptions.VerificationError):
            continue
        except ValueError:  # malformed signature bytes for this key type
            continue
    return False


def verify_attestation(
    envelope_bytes: bytes, *, trusted_keys: list[Key], image_digest: str
) -> VerifiedScan:
    """Verify a DSSE scan attestation about ``image_digest`` signed by one of ``trusted_keys``.

    Refuses (AttestationError, one line): oversized or malformed envelopes, unknown signers,
    tampered payloads, statements about another digest, and predicates that are not a scan.
    """
    payload, keyid = open_envelope(envelope_bytes, trusted_keys)
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError):
        raise AttestationError("the signed statement is not JSON") from None
    scan = read_statement(statement, image_digest=image_digest)
    return VerifiedScan(
        report=scan.report,
        image_digest=image_digest,
        scan_finished_on=scan.scan_finished_on,
        signer_keyid=keyid,
        predicate_type=scan.predicate_type,
        attestation_digest=envelope_digest(envelope_bytes),
    )
