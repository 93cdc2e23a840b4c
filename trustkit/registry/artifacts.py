"""Small OCI artifacts written the way cosign writes them (``.sig`` and ``.att`` manifests): one
place for the blob upload, the compact JSON and the image-manifest shape both attachments use."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from trustkit.registry.model import OCI_MANIFEST, Descriptor, sha256_digest

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
