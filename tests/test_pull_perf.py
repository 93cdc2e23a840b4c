"""Pull into an OCI layout: each blob hashed once and written once, layers in parallel, and the
layout still never holds bytes under the wrong digest: not when one layer of a parallel pull is
served tampered, not when the pull is interrupted (Ctrl-C or killed) with layers in flight."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpcore._backends.sync
import pytest
from fixtures.registry import BuiltImage, Registry, TamperingProxy, make_oci_image, use_registry

import trustkit.registry.client
import trustkit.registry.deadline
import trustkit.registry.layout
import trustkit.registry.location
from trustkit.config import Settings
from trustkit.errors import DigestMismatchError
from trustkit.pipeline.flows import pull_image, push_image
from trustkit.registry import OCILayout, fetch_image, open_image_location
from trustkit.registry.copy import TRANSFER_LISTENER

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


@pytest.mark.parametrize("kind", ["registry", "tls_registry"])
def test_a_plain_connection_is_read_in_large_reads_a_tls_one_as_httpcore_asks(
    kind: str,
    request: pytest.FixtureRequest,
    settings: Settings,
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpcore reads 64 KiB at a time; a blob body is read in reads of up to 1 MiB (far fewer
    passes through the HTTP stack per byte), and every byte is still hashed and bounded."""
    reg: Registry = request.getfixturevalue(kind)
    use_registry(settings, reg)
    image = make_oci_image(tmp_path / "src", "v1", (3_000_000,), seed=repo_name.encode())
    ref = reg.ref(f"{repo_name}-{kind}")
    push_image(settings, image.oci, ref, sign=False)
    asked: list[int] = []
    inner = httpcore._backends.sync.SyncStream.read  # plain sockets and TLS ones alike

    def read(self: Any, max_bytes: int, timeout: float | None = None) -> bytes:
        asked.append(max_bytes)
        return inner(self, max_bytes, timeout)

    monkeypatch.setattr(httpcore._backends.sync.SyncStream, "read", read)
    dest = tmp_path / "out"
    pulled = pull_image(settings, f"{ref}@{image.digest}", dest=f"oci:{dest}:v1", verify=False)
    assert pulled.descriptor.digest == image.digest
    assert all(OCILayout(dest).blob_exists(b) for b in image.blobs)
    expected = trustkit.registry.deadline.TCP_READ_BYTES if kind == "registry" else 64 * 1024
    assert asked and set(asked) == {expected}, sorted(set(asked))


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


# --- a registry serving one layer tampered, and pulls that are interrupted -------------------
def _layout_is_consistent(dest: Path) -> list[str]:
    """The digests of every blob file in the layout, after checking each hashes to its name and
    every index entry names a blob that is there (what a reader of the layout relies on)."""
    blobs = dest / "blobs" / "sha256"
    held = []
    for path in blobs.iterdir() if blobs.is_dir() else ():
        if path.name.startswith(".tmp-"):
            continue  # a temporary file is never read as a blob: its name is no digest
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path
        held.append("sha256:" + path.name)
    layout = OCILayout(dest)
    if layout.exists():
        for entry in layout.index_entries():
            assert entry.digest in held, entry
    return held


@pytest.mark.parametrize(
    "serve",
    [
        pytest.param(lambda body: body[:100] + bytes([body[100] ^ 1]) + body[101:], id="other"),
        pytest.param(lambda body: body[: len(body) // 2], id="cut-short"),
        pytest.param(lambda body: body + b"\0" * 4096, id="longer"),
    ],
)
def test_a_parallel_pull_with_one_layer_tampered_refuses_and_keeps_nothing_of_it(
    serve: Callable[[bytes], bytes],
    settings: Settings,
    registry: Registry,
    tampering_proxy: Callable[..., TamperingProxy],
    repo_name: str,
    tmp_path: Path,
) -> None:
    image = make_oci_image(tmp_path / "src", "v1", LAYERS, seed=repo_name.encode())
    push_image(settings, image.oci, registry.ref(repo_name), sign=False)
    layers = [layer["digest"] for layer in json.loads(_manifest(image))["layers"]]
    tampered = layers[2]
    # a registry (or a mirror, a proxy) serving other bytes for one layer, headers unchanged
    proxy = tampering_proxy(
        registry.url, lambda m, path, body: serve(body) if path.endswith(tampered) else None
    )
    started: set[str] = set()
    token = TRANSFER_LISTENER.set(lambda event, desc: started.add(threading.current_thread().name))
    dest = tmp_path / "out"
    try:
        with pytest.raises(DigestMismatchError, match=tampered):
            pull_image(
                settings,
                f"{proxy.host}/{repo_name}@{image.digest}",  # pinned: every byte is checked
                dest=f"oci:{dest}:v1",
                verify=True,
            )
    finally:
        TRANSFER_LISTENER.reset(token)
    assert any(tampered in hit for hit in proxy.hits)  # the lie was served...
    assert len(started) >= 2, started  # ...to a pull fetching layers on several threads
    held = _layout_is_consistent(dest)
    assert tampered not in held
    assert not OCILayout(dest).blob_path(tampered).exists()
    assert not list((dest / "blobs" / "sha256").glob(".tmp-*"))  # stopped blobs cleaned up
    assert OCILayout(dest).tags() == []  # no tag names the refused image
    # the honest registry then delivers the whole image into the same layout
    pulled = pull_image(
        settings, f"{registry.host}/{repo_name}@{image.digest}", dest=f"oci:{dest}:v1", verify=True
    )
    assert pulled.descriptor.digest == image.digest
    assert set(image.blobs) <= set(_layout_is_consistent(dest))


def _manifest(image: BuiltImage) -> bytes:
    return (image.layout / "blobs" / "sha256" / image.digest[7:]).read_bytes()


class SlowLink:
    """A TCP relay to a registry whose answers trickle (``chunk`` bytes every ``pause`` s): a
    slow link, so a pull can be interrupted while its layers are in flight."""

    def __init__(self, upstream_port: int, *, chunk: int = 32 * 1024, pause: float = 0.05) -> None:
        self.upstream_port, self.chunk, self.pause = upstream_port, chunk, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self.pause), daemon=True
            ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pause: float) -> None:
        try:
            while data := src.recv(self.chunk):
                dst.sendall(data)
                if pause:
                    time.sleep(pause)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_pull_leaves_the_layout_consistent(
    how: signal.Signals,
    settings: Settings,
    registry: Registry,
    repo_name: str,
    tmp_path: Path,
) -> None:
    old = make_oci_image(tmp_path / "old", "v0", (1000,), seed=b"old")
    # 4 layers of 2 MB at 640 KB/s each: seconds in flight, even on a loaded machine
    image = make_oci_image(tmp_path / "src", "v1", (2_000_000,) * 4, seed=repo_name.encode())
    push_image(settings, image.oci, registry.ref(repo_name), sign=False)
    dest = tmp_path / "out"
    fetch_image(  # the layout already holds an image, which must survive
        open_image_location(settings, old.oci),
        expected_digest=old.digest,
        dest=open_image_location(settings, f"oci:{dest}:v0"),
    )
    index_before = (dest / "index.json").read_bytes()
    link = SlowLink(registry.port)
    env = dict(
        os.environ,
        SERVIN_TRUST_DIR=str(settings.trust_dir),
        SERVIN_CONFIG=str(settings.effective_config_dir),
        SERVIN_CONTENT_TRUST="0",
    )
    argv = ["pull", f"{link.host}/{repo_name}:v1", "--dest", f"oci:{dest}:v1", "--quiet"]
    pull = subprocess.Popen(
        [sys.executable, "-m", "trustkit", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in (dest / "blobs" / "sha256").glob(".tmp-*")):
            assert pull.poll() is None, "the pull ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        pull.send_signal(how)  # layers in flight
        _, stderr = pull.communicate(timeout=60)
    finally:
        link.close()
        if pull.poll() is None:
            pull.kill()
    assert pull.returncode != 0, stderr
    held = _layout_is_consistent(dest)
    assert (dest / "index.json").read_bytes() == index_before  # v1 not named, v0 intact
    assert set(old.blobs) <= set(held) and old.digest in held
    assert not set(held) >= set(image.blobs)  # it was stopped before the image was complete
    if how is signal.SIGINT:  # Ctrl-C: stopped blobs are cleaned up, the refusal is one line
        assert not list((dest / "blobs" / "sha256").glob(".tmp-*"))
        assert pull.returncode == 130, stderr
        assert stderr.decode().strip() in ("trustkit: aborted", "trustkit: interrupted")
    # the next pull completes the image in the same layout
    fetch_image(
        open_image_location(settings, registry.ref(repo_name)),
        expected_digest=image.digest,
        dest=open_image_location(settings, f"oci:{dest}:v1"),
    )
    assert set(image.blobs) <= set(_layout_is_consistent(dest))
    assert sorted(OCILayout(dest).tags()) == ["v0", "v1"]


def test_the_first_refused_layer_stops_the_layers_still_in_flight(
    settings: Settings,
    registry: Registry,
    tampering_proxy: Callable[..., TamperingProxy],
    repo_name: str,
    tmp_path: Path,
) -> None:
    # a small layer served tampered, three large ones trickling over a slow link: the refusal
    # comes first, and the large layers are given up rather than fetched to the end
    sizes = (4_096, 2_000_000, 2_000_000, 2_000_000)
    image = make_oci_image(tmp_path / "src", "v1", sizes, seed=repo_name.encode())
    push_image(settings, image.oci, registry.ref(repo_name), sign=False)
    layers = [layer["digest"] for layer in json.loads(_manifest(image))["layers"]]
    small, large = layers[0], layers[1:]
    proxy = tampering_proxy(
        registry.url, lambda m, path, body: body[::-1] if path.endswith(small) else None
    )
    link = SlowLink(proxy.port)
    dest = tmp_path / "out"
    try:
        with pytest.raises(DigestMismatchError, match=small):
            pull_image(
                settings,
                f"{link.host}/{repo_name}@{image.digest}",
                dest=f"oci:{dest}:v1",
                verify=True,
            )
    finally:
        link.close()
    held = _layout_is_consistent(dest)
    assert not set(large) & set(held)  # stopped in flight, not completed after the refusal
    assert small not in held
    assert not list((dest / "blobs" / "sha256").glob(".tmp-*"))
    assert OCILayout(dest).tags() == []
