"""cosign 2.5 as a peer: it accepts trustkit's attestations, and trustkit verifies its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures.cosign import Cosign, put_tiny_image
from fixtures.reports import retarget

from trustkit.attest.reports import parse_report
from trustkit.attest.service import attest_report, verified_scans
from trustkit.attest.statement import PREDICATE_COSIGN_VULN
from trustkit.config import Settings
from trustkit.keys import CryptoSigner, load_public_key, public_key_pem
from trustkit.registry.location import open_image_location

pytestmark = pytest.mark.peer

DATA = Path(__file__).parent / "data" / "reports"
ALPINE = retarget((DATA / "trivy_alpine-39.json").read_bytes())  # about no other image


def push_image(settings: Settings, image: str, salt: str) -> str:
    location = open_image_location(settings, image)
    try:
        return put_tiny_image(location, image.rpartition(":")[2], salt=salt).digest
    finally:
        location.close()


def verify_with_cosign(cosign: Cosign, pub: Path, image: str) -> tuple[int, str]:
    done = cosign.run(
        "verify-attestation",
        "--key",
        str(pub),
        "--insecure-ignore-tlog=true",
        "--type",
        "vuln",
        "--allow-insecure-registry",
        image,
    )
    return done.returncode, done.stdout + done.stderr


def test_cosign_accepts_trustkit_attestation_and_rejects_another_key(
    settings: Settings, attest_registry: str, cosign: Cosign, tmp_path: Path
) -> None:
    image = f"{attest_registry}/peer/trustkit:1"
    digest = push_image(settings, image, "tk")
    signer = CryptoSigner.generate_ecdsa()
    attest_report(settings, image, report_bytes=ALPINE, signer=signer)
    pub = tmp_path / "scanner.pub"
    pub.write_bytes(public_key_pem(signer.public_key))
    pinned = f"{attest_registry}/peer/trustkit@{digest}"
    code, output = verify_with_cosign(cosign, pub, pinned)
    assert code == 0, output
    payloads = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert payloads, output
    other_pub = cosign.key_pair(tmp_path / "other")[1]
    code, output = verify_with_cosign(cosign, other_pub, pinned)
    assert code != 0
    assert "no matching attestations" in output or "signature" in output.lower()


def test_trustkit_verifies_cosign_attestation(
    settings: Settings, attest_registry: str, cosign: Cosign, tmp_path: Path
) -> None:
    image = f"{attest_registry}/peer/cosign:1"
    digest = push_image(settings, image, "cs")
    key, pub = cosign.key_pair(tmp_path / "cosign-keys")
    predicate = {
        "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy",
            "version": "dev",
            "db": {"uri": "", "version": ""},
            "result": json.loads(ALPINE),
        },
        "metadata": {
            "scanStartedOn": "2025-01-02T03:04:00Z",
            "scanFinishedOn": "2025-01-02T03:05:00Z",
        },
    }
    predicate_file = tmp_path / "predicate.json"
    predicate_file.write_text(json.dumps(predicate))
    done = cosign.run(
        "attest",
        "--key",
        str(key),
        "--type",
        "vuln",
        "--predicate",
        str(predicate_file),
        "--tlog-upload=false",
        "--allow-insecure-registry",
        "--yes",
        f"{attest_registry}/peer/cosign@{digest}",
    )
    assert done.returncode == 0, done.stderr
    cosign_key = load_public_key(pub.read_bytes())
    scans, problems = verified_scans(settings, image, trusted_keys=[cosign_key])
    assert problems == []
    assert len(scans) == 1
    scan = scans[0]
    assert scan.predicate_type == PREDICATE_COSIGN_VULN
    assert scan.signer_keyid == cosign_key.keyid
    assert scan.scan_finished_on == datetime(2025, 1, 2, 3, 5, tzinfo=UTC)
    assert scan.report.counts() == parse_report(ALPINE).counts()

    # a trustkit attestation added next to cosign's keeps it, and cosign still reads both
    signer = CryptoSigner.generate_ecdsa()
    attest_report(settings, image, report_bytes=ALPINE, signer=signer)
    scans, problems = verified_scans(settings, image, trusted_keys=[cosign_key, signer.public_key])
    assert len(scans) == 2 and problems == []
    code, output = verify_with_cosign(cosign, pub, f"{attest_registry}/peer/cosign@{digest}")
    assert code == 0, output
    # with only cosign's key trusted, trustkit's own attestation is listed as unverifiable
    scans, problems = verified_scans(settings, image, trusted_keys=[cosign_key])
    assert len(scans) == 1 and len(problems) == 1
