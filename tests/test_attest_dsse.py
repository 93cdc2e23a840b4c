"""Statements and DSSE envelopes: round trip, and each way a bad attestation is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustkit.attest import dsse
from trustkit.attest.dsse import open_envelope, sign_statement, verify_attestation
from trustkit.attest.reports import parse_report
from trustkit.attest.statement import (
    PREDICATE_COSIGN_VULN,
    PREDICATE_VULNS_V02,
    STATEMENT_V1,
    build_statement,
)
from trustkit.attest.vex import parse_vex
from trustkit.errors import AttestationError
from trustkit.keys import CryptoSigner, SSlibKey

DATA = Path(__file__).parent / "data" / "reports"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
FINISHED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer() -> CryptoSigner:
    return CryptoSigner.generate_ecdsa()


def statement(name: str = "trivy_alpine-39.json", **kw: Any) -> dict[str, Any]:
    raw = (DATA / name).read_bytes()
    return build_statement(
        repository="127.0.0.1:5000/demo/app",
        image_digest=kw.pop("image_digest", DIGEST),
        report=parse_report(raw),
        raw_report=json.loads(raw),
        scan_finished_on=FINISHED,
        **kw,
    )


def resign(envelope: bytes, signer: CryptoSigner, payload: bytes) -> bytes:
    """A correctly signed envelope around arbitrary payload bytes."""
    from securesystemslib.dsse import Envelope

    env = Envelope(payload=payload, payload_type=dsse.PAYLOAD_TYPE, signatures={})
    env.sign(signer)
    return json.dumps(env.to_dict()).encode()


def test_statement_shape() -> None:
    st = statement()
    assert st["_type"] == STATEMENT_V1
    assert st["subject"] == [{"name": "127.0.0.1:5000/demo/app", "digest": {"sha256": "ab" * 32}}]
    assert st["predicateType"] == PREDICATE_COSIGN_VULN
    pred = st["predicate"]
    # the cosign vuln predicate's fields (samples/attestations/cosign_vuln-predicate.json)
    sample = json.loads((DATA / "cosign_vuln-predicate.json").read_bytes())
    assert set(pred) == set(sample)
    assert set(pred["scanner"]) == set(sample["scanner"])
    assert set(pred["invocation"]) == set(sample["invocation"])
    assert pred["metadata"]["scanFinishedOn"] == "2025-03-01T12:00:00Z"
    assert pred["scanner"]["result"]["SchemaVersion"] == 2  # the scanner's own report
    assert pred["scanner"]["uri"] == "pkg:github/aquasecurity/trivy"


def test_round_trip(signer: CryptoSigner) -> None:
    envelope = sign_statement(statement(), signer)
    doc = json.loads(envelope)
    assert doc["payloadType"] == "application/vnd.in-toto+json"
    scan = verify_attestation(envelope, trusted_keys=[signer.public_key], image_digest=DIGEST)
    assert scan.signer_keyid == signer.public_key.keyid
    assert scan.scan_finished_on == FINISHED
    assert (
        scan.report.counts() == parse_report((DATA / "trivy_alpine-39.json").read_bytes()).counts()
    )
    assert scan.predicate_type == PREDICATE_COSIGN_VULN
    assert scan.attestation_digest and scan.attestation_digest.startswith("sha256:")


def test_vex_travels_in_the_attestation(signer: CryptoSigner) -> None:
    raw = (DATA / "trivy_alpine-39.json").read_bytes()
    report = parse_report(raw)
    target = report.findings[0]
    vex_doc = parse_vex(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "statements": [
                    {
                        "vulnerability": {"name": target.vulnerability_id},
                        "products": [{"@id": "pkg:oci/app"}],
                        "status": "not_affected",
                        "justification": "inline_mitigations_already_exist",
                    }
                ],
            }
        ).encode(),
        source="app.vex.json",
    )
    for predicate in (PREDICATE_COSIGN_VULN, PREDICATE_VULNS_V02):
        st = statement(vex_docs=[vex_doc], predicate_type=predicate)
        scan = verify_attestation(
            sign_statement(st, signer), trusted_keys=[signer.public_key], image_digest=DIGEST
        )
        hit = [f for f in scan.report.findings if f.vulnerability_id == target.vulnerability_id]
        assert hit and all(f.suppressed for f in hit), predicate
        assert len(scan.report.findings) == len(report.findings)
        assert hit[0].suppression and hit[0].suppression.source == "app.vex.json"


def test_vulns_v02_round_trip(signer: CryptoSigner) -> None:
    st = statement("defectdojo_issue_9618.json", predicate_type=PREDICATE_VULNS_V02)
    assert st["predicateType"] == PREDICATE_VULNS_V02
    assert isinstance(st["predicate"]["scanner"]["result"], list)
    scan = verify_attestation(
        sign_statement(st, signer), trusted_keys=[signer.public_key], image_digest=DIGEST
    )
    original = parse_report((DATA / "defectdojo_issue_9618.json").read_bytes())
    assert scan.report.counts() == original.counts()
    assert [f.fix_state for f in scan.report.findings] == [f.fix_state for f in original.findings]
    assert scan.report.scanner.db_updated == original.scanner.db_updated


def test_tampered_envelope_is_refused(signer: CryptoSigner) -> None:
    doc = json.loads(sign_statement(statement(), signer))
    payload = base64.b64decode(doc["payload"]).replace(b"CRITICAL", b"LOW")
    doc["payload"] = base64.b64encode(payload).decode()
    with pytest.raises(AttestationError, match="does not verify with any trusted scanner key"):
        verify_attestation(
            json.dumps(doc).encode(), trusted_keys=[signer.public_key], image_digest=DIGEST
        )


def test_changed_payload_type_is_refused(signer: CryptoSigner) -> None:
    doc = json.loads(sign_statement(statement(), signer))
    doc["payloadType"] = "text/plain"
    with pytest.raises(AttestationError, match="unexpected DSSE payloadType 'text/plain'"):
        verify_attestation(
            json.dumps(doc).encode(), trusted_keys=[signer.public_key], image_digest=DIGEST
        )


def test_wrong_key_is_refused(signer: CryptoSigner) -> None:
    envelope = sign_statement(statement(), signer)
    stranger = CryptoSigner.generate_ecdsa().public_key
    with pytest.raises(AttestationError, match="does not verify with any trusted scanner key"):
        verify_attestation(envelope, trusted_keys=[stranger], image_digest=DIGEST)
    with pytest.raises(AttestationError, match="no trusted scanner keys"):
        verify_attestation(envelope, trusted_keys=[], image_digest=DIGEST)


def test_statement_about_another_digest_is_refused(signer: CryptoSigner) -> None:
    envelope = sign_statement(statement(image_digest=OTHER), signer)
    with pytest.raises(AttestationError, match=r"about sha256:cdcdcdcdcdcd, not about sha256:abab"):
        verify_attestation(envelope, trusted_keys=[signer.public_key], image_digest=DIGEST)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"this is not json", "the signed statement is not JSON"),
        (b'"a string"', "the statement is not a JSON object"),
        (b'{"_type": "https://example.com/Other"}', "not an in-toto Statement"),
    ],
)
def test_non_json_statement_is_refused(signer: CryptoSigner, payload: bytes, message: str) -> None:
    envelope = resign(b"", signer, payload)
    with pytest.raises(AttestationError, match=message):
        verify_attestation(envelope, trusted_keys=[signer.public_key], image_digest=DIGEST)


@pytest.mark.parametrize(
    ("predicate", "message"),
    [
        ("not json {", "the predicate is not a JSON object"),
        ({"scanner": {"result": None}, "metadata": {}}, "scanner.result is not a scan report"),
        ({"scanner": {"result": {"hello": 1}}}, "predicate is not the expected shape"),
        (
            {
                "scanner": {"result": json.loads((DATA / "trivy_alpine-39.json").read_bytes())},
                "metadata": {"scanFinishedOn": "0001-01-01T00:00:00Z"},
            },
            "no valid metadata.scanFinishedOn",
        ),
    ],
)
def test_bad_predicate_is_refused(signer: CryptoSigner, predicate: Any, message: str) -> None:
    st = statement()
    st["predicate"] = predicate
    envelope = resign(b"", signer, json.dumps(st).encode())
    with pytest.raises(AttestationError, match=message):
        verify_attestation(envelope, trusted_keys=[signer.public_key], image_digest=DIGEST)


def test_other_predicate_type_is_refused(signer: CryptoSigner) -> None:
    st = statement()
    st["predicateType"] = "https://slsa.dev/provenance/v0.2"
    envelope = sign_statement(st, signer)
    with pytest.raises(AttestationError, match="is not a scan result"):
        verify_attestation(envelope, trusted_keys=[signer.public_key], image_digest=DIGEST)


def test_oversized_and_malformed_envelopes(
    signer: CryptoSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelope = sign_statement(statement(), signer)
    monkeypatch.setattr(dsse, "MAX_ENVELOPE_BYTES", len(envelope) - 1)
    with pytest.raises(AttestationError, match=r"over the .*-byte limit"):
        verify_attestation(envelope, trusted_keys=[signer.public_key], image_digest=DIGEST)
    monkeypatch.undo()
    for bad, message in [
        (b"{", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (
            b'{"payloadType": "application/vnd.in-toto+json", "payload": "!!", "signatures": []}',
            "payload is not base64",
        ),
        (
            b'{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": []}',
            "has no signatures",
        ),
    ]:
        with pytest.raises(AttestationError, match=message):
            verify_attestation(bad, trusted_keys=[signer.public_key], image_digest=DIGEST)


def test_dsse_spec_test_vector() -> None:
    """The DSSE protocol's ECDSA test vector (raw r||s signature, no keyid) verifies."""
    vector = json.loads((DATA / "dsse_spec_test_vector.json").read_bytes())
    numbers = vector["ecdsa_p256_sha256_deterministic_rfc6979"]
    public = ec.EllipticCurvePublicNumbers(int(numbers["x"]), int(numbers["y"]), ec.SECP256R1())
    key = SSlibKey.from_crypto(public.public_key())
    envelope = json.dumps(vector["envelope"]).encode()
    payload, keyid = open_envelope(envelope, [key], payload_type=vector["payload_type"])
    assert payload == vector["serialized_body"].encode()
    assert keyid == key.keyid
    from securesystemslib.dsse import Envelope

    pae = Envelope(payload, vector["payload_type"], {}).pae()
    assert pae == vector["pae"].encode()
    tampered = dict(vector["envelope"], payload=base64.b64encode(b"hello World").decode())
    with pytest.raises(AttestationError):
        open_envelope(json.dumps(tampered).encode(), [key], payload_type=None)


def test_cosign_sample_envelope_needs_its_key() -> None:
    """cosign's own test envelope (keyid "") is refused without its key — never trusted blindly."""
    envelope = (DATA / "cosign_dsse_vuln_envelope.json").read_bytes()
    with pytest.raises(AttestationError, match="does not verify"):
        verify_attestation(
            envelope, trusted_keys=[CryptoSigner.generate_ecdsa().public_key], image_digest=DIGEST
        )
