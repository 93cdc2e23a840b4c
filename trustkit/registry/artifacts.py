"""Small OCI artifacts written the way cosign writes them (``.sig`` and ``.att`` manifests): one
place for the blob upload, the compact JSON and the image-manifest shape both attachments use."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from trustkit.errors import BadInputError, NotFoundError, RegistryError
from trustkit.registry.model import (
    OCI_EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ManifestBlob,
    sha256_digest,
)

if TYPE_CHECKING:
    from trustkit.registry.location import ImageLocation

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ZERO_TIME = "0001-01-01T00:00:00Z"  # what cosign writes into its config's created fields


def json_bytes(doc: dict[str, Any]) -> bytes:
    """Compact JSON, as the manifest or blob bytes that get hashed."""
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def upload(location: ImageLocation, data: bytes, media_type: str) -> Descriptor:
    """Upload ``data`` unless the registry already has it; its descriptor either way."""
    desc = Descriptor(media_type, sha256_digest(data), len(data))
    if not location.blob_exists(desc.digest):
        location.upload_blob(desc, data)
    return desc


def layered_manifest(location: ImageLocation, layers: list[Descriptor]) -> bytes:
    """An image manifest like cosign's: a config whose diff_ids are the layer digests."""
    config = {
        "architecture": "",
        "created": ZERO_TIME,
        "history": [{"created": ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "config": {},
    }
    config_desc = upload(location, json_bytes(config), OCI_CONFIG)
    return json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_desc.to_dict(),
            "layers": [layer.to_dict() for layer in layers],
        }
    )


def get_optional_manifest(location: ImageLocation, reference: str) -> ManifestBlob | None:
    """The manifest ``reference`` names, or None when the registry has none."""
    try:
        return location.get_manifest(reference)
    except NotFoundError:
        return None


def referrer_manifest(
    location: ImageLocation,
    artifact_type: str,
    layer: Descriptor,
    subject: Descriptor,
    annotations: dict[str, str] | None = None,
) -> bytes:
    """An OCI 1.1 referrer: one ``layer`` about ``subject``, with the empty config."""
    config = upload(location, b"{}", OCI_EMPTY_JSON)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.to_dict(),
        "layers": [layer.to_dict()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_dict(),
    }
    if annotations:
        doc["annotations"] = annotations
    return json_bytes(doc)


def add_to_fallback_index(location: ImageLocation, tag: str, entry: Descriptor) -> None:
    """Add ``entry`` to the referrers tag-schema fallback index ``tag`` (``sha256-<hex>``), for
    registries without the referrers API; nothing when it is listed already."""
    current = get_optional_manifest(location, tag)
    entries: list[Descriptor] = []
    if current is not None:
        try:
            entries = current.children() if current.is_index else []
        except BadInputError as exc:
            raise RegistryError(f"referrers index {tag} is malformed: {exc}") from None
    if any(e.digest == entry.digest for e in entries):
        return
    entries.append(entry)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [e.to_dict() for e in entries],
    }
    location.put_manifest(tag, json_bytes(index), OCI_INDEX)
