"""Where a registry has the OCI 1.1 referrers API, signatures are also written as referrers and
read through the API (Debian's docker-registry has none: a location that indexes referrers
stands in for one here, over a real OCI layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fixtures.cosign import put_tiny_image
from fixtures.sigstore import GITHUB_ISSUER, RELEASE_WORKFLOW, PrivateSigstore

from trustkit.registry.layout import OCILayout
from trustkit.registry.location import LayoutLocation
from trustkit.registry.model import Descriptor
from trustkit.sources.cosign import (
    SIG_ARTIFACT,
    attach_bundle,
    attach_signature,
    cosign_key_from_pem,
    read_material,
    signature_tag,
    simple_signing_payload,
    verify_with_keys,
)
from trustkit.sources.sigstore import (
    BUNDLE_V03,
    KeylessIdentity,
    load_trusted_root,
    verify_keyless,
)


class ReferrersLocation:
    """An OCI layout that answers the referrers API from the manifests written to it."""

    def __init__(self, inner: LayoutLocation) -> None:
        self.inner = inner
        self.index: dict[str, list[Descriptor]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_manifest(
        self, reference: str | None, data: bytes, media_type: str, *, top_level: bool = True
    ) -> str:
        digest = self.inner.put_manifest(reference, data, media_type, top_level=top_level)
        doc = json.loads(data)
        subject = doc.get("subject")
        if subject is not None:
            entry = Descriptor(media_type, digest, len(data), artifact_type=doc.get("artifactType"))
            self.index.setdefault(subject["digest"], []).append(entry)
        return digest

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        return list(self.index.get(digest, []))


def test_signature_and_bundle_as_referrers_through_the_api(tmp_path: Path) -> None:
    layout = OCILayout(tmp_path / "layout")
    layout.init()
    location = ReferrersLocation(LayoutLocation(layout, "v1"))
    subject = put_tiny_image(location, "v1")  # type: ignore[arg-type]

    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = cosign_key_from_pem(pem, "release.pub")
    payload = simple_signing_payload("registry.example/app:v1", subject.digest)
    signature = private.sign(payload, ec.ECDSA(hashes.SHA256()))
    _, referrer = attach_signature(location, subject, payload, signature, key=key)  # type: ignore[arg-type]
    assert referrer is not None
    assert [d.artifact_type for d in location.index[subject.digest]] == [SIG_ARTIFACT]

    sigstore = PrivateSigstore(tmp_path / "sigstore")
    attach_bundle(location, subject, sigstore.sign_digest(subject.digest))  # type: ignore[arg-type]
    kinds = [d.artifact_type for d in location.index[subject.digest]]
    assert kinds == [SIG_ARTIFACT, BUNDLE_V03]
    # with the API, no fallback index tag is written
    assert signature_tag(subject.digest)[: -len(".sig")] not in layout.tags()

    # the signature is read from both places, the bundle from the referrer
    layout_tags = layout.tags()
    assert signature_tag(subject.digest) in layout_tags
    material = read_material(location, subject.digest)  # type: ignore[arg-type]
    where = {layer.found_in.split()[0] for layer in material.layers}
    assert where == {"tag", "referrer"}
    assert verify_with_keys(material, [key]).verified
    root = load_trusted_root(str(sigstore.trusted_root_path))
    wanted = KeylessIdentity(GITHUB_ISSUER, identity=RELEASE_WORKFLOW)
    assert [b.found_in.split()[0] for b in material.bundles] == ["referrer"]
    assert verify_keyless(material, wanted, [root]).verified
