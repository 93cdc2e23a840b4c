"""Build small OCI image layouts for the demo (no container engine needed).

Each image has one gzip'd tar layer holding a file with the given text, a config, a manifest,
and an ``index.json`` entry with ``org.opencontainers.image.ref.name`` = tag.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _put_blob(layout: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}", len(data)


def _layer(text: str) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        body = text.encode()
        info = tarfile.TarInfo("app/VERSION")
        info.size = len(body)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(body))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def build_image(layout: Path, tag: str, text: str) -> str:
    """Add an image tagged ``tag`` to the OCI layout at ``layout``; returns its manifest digest."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    layer, diff_id = _layer(text)
    layer_digest, layer_size = _put_blob(layout, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_size = _put_blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = _put_blob(layout, json.dumps(manifest).encode())
    index_path = layout / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
        }
    )
    index["manifests"] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ] + [
        {
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    ]
    index_path.write_text(json.dumps(index))
    return manifest_digest


if __name__ == "__main__":
    # python3 scripts/demo_images.py DIR TAG...: the README tour's images, one per tag
    import sys

    if len(sys.argv) < 3:
        sys.exit("usage: python3 scripts/demo_images.py DIR TAG...")
    for name in sys.argv[2:]:
        text = f"app {name}" + "\n"
        print(f"{name}: {build_image(Path(sys.argv[1]), name, text)}")
