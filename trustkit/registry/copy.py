"""Copy and fetch images between locations, verifying every byte on the way.

``copy_image`` is push (any source → any destination), ``fetch_image`` is pull (by digest when
one is trusted). Both walk an image index into each platform manifest, check every child against
its descriptor in the index and every blob against its descriptor in the manifest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextvars import ContextVar
from dataclasses import dataclass

from trustkit.config import Settings
from trustkit.errors import BadInputError, DigestMismatchError, NotFoundError
from trustkit.refs import ImageRef
from trustkit.registry.location import (
    ImageLocation,
    LayoutLocation,
    open_registry_location,
    verified_blob_file,
)
from trustkit.registry.model import BlobSink, Descriptor, ManifestBlob
from trustkit.registry.pool import RegistryPool

#: blobs of one manifest moved at once: enough to keep both cores hashing and the registry busy,
#: few enough that one image cannot open an unbounded number of connections or files
PARALLEL_BLOBS = 4
MAX_INDEX_DEPTH = 2  # an index of indexes is legal; deeper nesting is refused

#: who hears about each blob of a transfer: ("start" | "copied" | "skipped" | "mounted", blob);
#: the CLI's progress display. Read once per transfer (its worker threads do not inherit it).
TransferListener = Callable[[str, Descriptor], None]
TRANSFER_LISTENER: ContextVar[TransferListener | None] = ContextVar(
    "trustkit_transfer_listener", default=None
)


@dataclass(frozen=True)
class CopyStats:
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    manifests: int = 0


class _Transfer:
    def __init__(self, src: ImageLocation, dest: ImageLocation | None) -> None:
        self.src, self.dest = src, dest
        self.copied = self.skipped = self.mounted = self.manifests = 0
        self._lock = threading.Lock()
        self._listener = TRANSFER_LISTENER.get()
        self._stop = threading.Event()  # set when one blob failed: the others give up

    def manifest(self, blob: ManifestBlob, depth: int = 0) -> None:
        """Verify (and copy) everything ``blob`` references, children first."""
        if blob.is_index:
            if depth >= MAX_INDEX_DEPTH:
                raise BadInputError(f"image index {blob.digest} nests too deeply")
            for child_desc in blob.children():
                child = self.src.get_manifest(child_desc.digest, expected_digest=child_desc.digest)
                _check_descriptor(child, child_desc)
                self.manifest(child, depth + 1)
                if self.dest is not None:
                    self.dest.put_manifest(
                        child.digest, child.data, child.media_type, top_level=False
                    )
                    self.manifests += 1
            return
        blobs = blob.blobs()
        if len(blobs) <= 1:
            for desc in blobs:
                self.blob(desc)
            return
        self._in_parallel(blobs)

    def _in_parallel(self, blobs: Sequence[Descriptor]) -> None:
        """Blobs on several threads, as skopeo does (hashlib and socket reads release the GIL,
        so both cores hash). The first failure stops the rest: queued blobs never start, blobs
        in flight stop at their next chunk and leave nothing behind, and that failure (or the
        interrupt that stopped the caller) is what is raised."""
        pool = ThreadPoolExecutor(
            max_workers=min(PARALLEL_BLOBS, len(blobs)), thread_name_prefix="trustkit-blob"
        )
        futures: list[Future[None]] = []
        try:
            futures.extend(pool.submit(self.blob, desc) for desc in blobs)
            for future in as_completed(futures):
                future.result()
        except BaseException:
            self._stop.set()
            for future in futures:
                future.cancel()
            raise
        finally:
            pool.shutdown(wait=True)

    def blob(self, desc: Descriptor) -> None:
        if self._listener is not None:
            self._listener("start", desc)
        outcome = self._blob(desc)
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
        if self._listener is not None:
            self._listener(outcome, desc)

    def _blob(self, desc: Descriptor) -> str:
        if self._stop.is_set():
            raise _Stopped
        if self.dest is None:
            self.src.fetch_blob(desc, _Stoppable(None, self._stop))
            return "copied"
        if self.dest.blob_exists(desc.digest):
            return "skipped"
        if self.dest.try_mount(desc, self.src):
            return "mounted"
        if isinstance(self.dest, LayoutLocation):
            # straight into the layout: fetch_blob hashes and checks the bytes as they are
            # written, the file is renamed into place only if they match
            with self.dest.layout.verified_blob_sink(desc.digest) as sink:
                self.src.fetch_blob(desc, _Stoppable(sink, self._stop))
            return "copied"
        with verified_blob_file(self.src, desc) as handle:
            self.dest.upload_blob(desc, handle)
        return "copied"


class _Stopped(Exception):
    """A blob given up because another blob of the transfer failed; never leaves this module
    (the transfer raises the failure that caused it)."""


class _Stoppable:
    """A blob sink that stops the fetch at the next chunk once ``stop`` is set (a sink of None
    only lets the fetch hash the bytes)."""

    def __init__(self, sink: BlobSink | None, stop: threading.Event) -> None:
        self._sink, self._stop = sink, stop

    def write(self, data: bytes, /) -> object:
        if self._stop.is_set():
            raise _Stopped
        return None if self._sink is None else self._sink.write(data)

    def seek(self, offset: int, /) -> object:
        return None if self._sink is None else self._sink.seek(offset)

    def truncate(self) -> object:
        return None if self._sink is None else self._sink.truncate()


def _check_descriptor(blob: ManifestBlob, desc: Descriptor) -> None:
    if blob.size != desc.size:
        raise DigestMismatchError(
            f"manifest {desc.digest} is {blob.size} bytes, its descriptor says {desc.size}"
        )
    if desc.media_type and (desc.media_type != blob.media_type):
        raise DigestMismatchError(
            f"manifest {desc.digest} is a {blob.media_type}, its descriptor says {desc.media_type}"
        )


def copy_image(
    src: ImageLocation,
    dest: ImageLocation,
    *,
    expected_digest: str | None = None,
    dest_reference: str | None = None,
) -> Descriptor:
    """Copy the image ``src`` names to ``dest`` (single or multi-arch); returns the pushed top
    manifest's descriptor. Blobs the destination has are skipped; same-registry blobs mounted."""
    return _run(src, dest, expected_digest=expected_digest, dest_reference=dest_reference)[0]


def fetch_image(
    src: ImageLocation,
    *,
    expected_digest: str | None,
    dest: ImageLocation | None = None,
    expected_size: int | None = None,
    dest_reference: str | None = None,
    top: ManifestBlob | None = None,
) -> Descriptor:
    """Pull: fetch by ``expected_digest`` (when known) and verify every byte; store in ``dest``
    if given, otherwise only verify. ``top`` is the top manifest when the caller already holds
    its bytes (they are checked against ``expected_digest`` all the same)."""
    return _run(
        src,
        dest,
        expected_digest=expected_digest,
        expected_size=expected_size,
        dest_reference=dest_reference,
        top=top,
    )[0]


def _run(
    src: ImageLocation,
    dest: ImageLocation | None,
    *,
    expected_digest: str | None,
    expected_size: int | None = None,
    dest_reference: str | None = None,
    top: ManifestBlob | None = None,
) -> tuple[Descriptor, CopyStats]:
    if top is not None and expected_digest is not None and top.digest != expected_digest:
        raise DigestMismatchError(f"manifest {top.digest} is not the expected {expected_digest}")
    if top is None:
        top = src.get_manifest(expected_digest or src.reference, expected_digest=expected_digest)
    if expected_size is not None and top.size != expected_size:
        raise DigestMismatchError(
            f"manifest {top.digest} is {top.size} bytes, the trusted size is {expected_size}"
        )
    transfer = _Transfer(src, dest)
    transfer.manifest(top)
    if dest is not None:
        target = dest_reference or dest.reference
        if target is None and src.reference and not src.reference.startswith("sha256:"):
            target = src.reference
        if target is not None and target.startswith("sha256:") and target != top.digest:
            raise BadInputError(f"destination digest {target} is not the image's {top.digest}")
        dest.put_manifest(target, top.data, top.media_type, top_level=True)
        transfer.manifests += 1
    stats = CopyStats(transfer.copied, transfer.skipped, transfer.mounted, transfer.manifests)
    return top.descriptor, stats


def resolve_digest(registries: RegistryPool | Settings, ref: ImageRef) -> Descriptor:
    """The digest and size a tag points at now: GET the manifest and hash the bytes.

    ``registries`` is the process's pool; bare ``Settings`` (transitional) opens a one-off one.
    """
    location = open_registry_location(registries, ref)
    try:
        return location.get_manifest(ref.digest or ref.tag or "latest").descriptor
    except NotFoundError as exc:
        # the user named an image that is not there: bad input, not a broken environment
        raise BadInputError(
            f"{ref.familiar}: no such image in the registry ({exc})",
            hint="check the repository and tag",
        ) from exc
    finally:
        location.close()
