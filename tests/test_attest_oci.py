"""Attaching and fetching attestations in an OCI layout and a real loopback docker-registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.cosign import put_tiny_image
from fixtures.reports import retarget

from trustkit.attest.dsse import ENVELOPE_MEDIA_TYPE
from trustkit.attest.oci import att_tag, fetch_attestations, referrers_tag
from trustkit.attest.service import attest_report, verified_scans
from trustkit.attest.statement import PREDICATE_VULNS_V02
from trustkit.config import Settings
from trustkit.keys import CryptoSigner
from trustkit.registry.location import open_image_location

DATA = Path(__file__).parent / "data" / "reports"
ALPINE = retarget((DATA / "trivy_alpine-39.json").read_bytes())  # about no other image
GRYPE = retarget((DATA / "defectdojo_issue_9618.json").read_bytes())


@pytest.fixture(scope="module")
def signer() -> CryptoSigner:
    return CryptoSigner.generate_ecdsa()


def manifest_json(settings: Settings, image: str, reference: str) -> dict:  # type: ignore[type-arg]
    location = open_image_location(settings, image)
    try:
        return location.get_manifest(reference).json()
    finally:
        location.close()


def check_accumulates(settings: Settings, image: str, signer: CryptoSigner) -> str:
    first = attest_report(settings, image, report_bytes=ALPINE, signer=signer)
    second = attest_report(
        settings, image, report_bytes=GRYPE, signer=signer, predicate_type=PREDICATE_VULNS_V02
    )
    digest = first.image_digest
    assert second.image_digest == digest
    att = manifest_json(settings, image, att_tag(digest))
    layers = att["layers"]
    assert [layer["digest"] for layer in layers] == [
        first.attached.envelope_digest,
        second.attached.envelope_digest,
    ]  # the second attestation kept the first
    assert all(layer["mediaType"] == ENVELOPE_MEDIA_TYPE for layer in layers)
    assert layers[0]["annotations"]["dev.cosignproject.cosign/signature"] == ""
    assert layers[1]["annotations"]["predicateType"] == PREDICATE_VULNS_V02
    scans, problems = verified_scans(settings, image, trusted_keys=[signer.public_key])
    assert problems == []
    assert len(scans) == 2
    assert {s.report.scanner.name for s in scans} == {"trivy", "grype"}
    assert scans[0].scan_finished_on >= scans[1].scan_finished_on
    return digest


def test_layout_attach_fetch_verify(
    settings: Settings, attest_layout: Path, signer: CryptoSigner
) -> None:
    location = open_image_location(settings, f"oci:{attest_layout}:v1")
    subject = put_tiny_image(location, "v1")
    digest = check_accumulates(settings, f"oci:{attest_layout}:v1", signer)
    assert digest == subject.digest  # the tag was resolved to its digest
    index = manifest_json(settings, f"oci:{attest_layout}:v1", referrers_tag(digest))
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert len(index["manifests"]) == 2
    assert {m["artifactType"] for m in index["manifests"]} == {ENVELOPE_MEDIA_TYPE}
    referrer = manifest_json(settings, f"oci:{attest_layout}:v1", index["manifests"][0]["digest"])
    assert referrer["subject"]["digest"] == digest


def test_registry_attach_fetch_verify(
    settings: Settings, attest_registry: str, signer: CryptoSigner
) -> None:
    image = f"{attest_registry}/demo/app:1.0"
    location = open_image_location(settings, image)
    subject = put_tiny_image(location, "1.0", salt="registry")
    location.close()
    digest = check_accumulates(settings, image, signer)
    assert digest == subject.digest
    # docker-registry 2.8 has no referrers API: the sha256-<hex> fallback index lists both
    index = manifest_json(settings, image, referrers_tag(digest))
    assert len(index["manifests"]) == 2
    # attaching the same envelope twice does not duplicate it
    location = open_image_location(settings, image)
    try:
        assert len(fetch_attestations(location, digest)) == 2
    finally:
        location.close()


def test_unverifiable_attestations_are_listed_not_used(
    settings: Settings, attest_layout: Path, signer: CryptoSigner
) -> None:
    image = f"oci:{attest_layout}:app"
    put_tiny_image(open_image_location(settings, image), "app")
    stranger = CryptoSigner.generate_ecdsa()
    attest_report(settings, image, report_bytes=ALPINE, signer=stranger)
    attest_report(settings, image, report_bytes=GRYPE, signer=signer)
    scans, problems = verified_scans(settings, image, trusted_keys=[signer.public_key])
    assert [s.report.scanner.name for s in scans] == ["grype"]
    assert len(problems) == 1 and "does not verify with any trusted scanner key" in problems[0]


def test_attestation_of_another_image_is_not_fetched(
    settings: Settings, attest_layout: Path, signer: CryptoSigner
) -> None:
    one = f"oci:{attest_layout}:one"
    two = f"oci:{attest_layout}:two"
    put_tiny_image(open_image_location(settings, one), "one", salt="1")
    put_tiny_image(open_image_location(settings, two), "two", salt="2")
    attest_report(settings, one, report_bytes=ALPINE, signer=signer)
    scans, problems = verified_scans(settings, two, trusted_keys=[signer.public_key])
    assert scans == [] and problems == []
    assert json.loads(ALPINE)["SchemaVersion"] == 2
