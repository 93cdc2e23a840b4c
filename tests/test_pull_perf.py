"""Pull into an OCI layout: each blob hashed once and written once, layers in parallel, and the
layout still never holds bytes under the wrong digest."""

from __future__ import annotations

import hashlib
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from fixtures.registry import Registry, make_oci_image

import trustkit.registry.client
import trustkit.registry.layout
import trustkit.registry.location
from trustkit.config import Settings
from trustkit.errors import DigestMismatchError
from trustkit.pipeline.flows import push_image
from trustkit.registry import OCILayout, fetch_image, open_image_location

LAYERS = (600_000, 500_000, 400_000, 300_000)


class _Hashed:
    """Counts what the registry client and the layout hash, and on which threads."""

    def __init__(self) -> None:
        self.bytes = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def module(self) -> types.SimpleNamespace:
        counter = self

        class Counting:
            def __init__(self, data: bytes = b"") -> None:
                self._inner = hashlib.sha256()
                self.update(data)

            def update(self, data: bytes) -> None:
                with counter._lock:
                    counter.bytes += len(data)
                    if data:
                        counter.threads.add(threading.current_thread().name)
                self._inner.update(data)

            def hexdigest(self) -> str:
                return self._inner.hexdigest()

        return types.SimpleNamespace(sha256=Counting)


def _no_spool(*_: Any, **__: Any) -> Any:
    raise AssertionError("a blob was spooled to a temporary file before reaching the layout")


def test_each_blob_hashed_once_written_once_in_parallel(
    settings: Settings,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = make_oci_image(tmp_path / "src", "v1", LAYERS, seed=b"pull-perf")
    ref = registry.ref("perf/pull-once")
    push_image(settings, image.oci, ref, sign=False)
    hashed = _Hashed()
    monkeypatch.setattr(trustkit.registry.client, "hashlib", hashed.module())
    monkeypatch.setattr(trustkit.registry.layout, "hashlib", hashed.module())
    monkeypatch.setattr(
        trustkit.registry.location.tempfile, "SpooledTemporaryFile", _no_spool, raising=True
    )
    dest = tmp_path / "out"
    descriptor = fetch_image(
        open_image_location(settings, ref),
        expected_digest=image.digest,
        dest=open_image_location(settings, f"oci:{dest}:v1"),
    )
    assert descriptor.digest == image.digest
    layers = sum(LAYERS)
    # every layer byte hashed once (before: once on the way in, once more into the layout);
    # the config and manifests are a few hundred bytes on top
    assert layers <= hashed.bytes < layers + 10_000, hashed.bytes
    assert len(hashed.threads) >= 2, hashed.threads  # layers fetched on more than one thread
    layout = OCILayout(dest)
    for digest in image.blobs:
        path = layout.blob_path(digest)
        assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert path.stat().st_mode & 0o777 == 0o644
    assert layout.tags() == ["v1"]
    assert not list((dest / "blobs" / "sha256").glob(".tmp-*"))


def test_a_blob_with_other_bytes_never_lands_in_the_layout(
    settings: Settings, tmp_path: Path
) -> None:
    image = make_oci_image(tmp_path / "src", "v1", LAYERS[:2], seed=b"tampered")
    layer = image.layout / "blobs" / "sha256" / image.blobs[0][7:]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: only the hash can tell
    layer.write_bytes(bytes(data))
    dest = tmp_path / "out"
    with pytest.raises(DigestMismatchError):
        fetch_image(
            open_image_location(settings, image.oci),
            expected_digest=image.digest,
            dest=open_image_location(settings, f"oci:{dest}:v1"),
        )
    layout = OCILayout(dest)
    assert not layout.blob_path(image.blobs[0]).exists()
    assert not list((dest / "blobs" / "sha256").glob(".tmp-*"))  # the partial file is gone
    assert layout.tags() == []  # no manifest names an incomplete image


def test_a_longer_blob_is_cut_and_refused(settings: Settings, tmp_path: Path) -> None:
    image = make_oci_image(tmp_path / "src", "v1", LAYERS[:1], seed=b"longer")
    layer = image.layout / "blobs" / "sha256" / image.blobs[0][7:]
    layer.write_bytes(layer.read_bytes() + b"endless data")
    dest = tmp_path / "out"
    with pytest.raises(DigestMismatchError):
        fetch_image(
            open_image_location(settings, image.oci),
            expected_digest=image.digest,
            dest=open_image_location(settings, f"oci:{dest}:v1"),
        )
    assert not OCILayout(dest).blob_path(image.blobs[0]).exists()
