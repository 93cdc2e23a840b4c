"""OCI image layouts on disk (``oci:PATH[:TAG]``): the embedded default, no server needed.

Follows the OCI image-layout spec: ``oci-layout``, ``index.json`` whose entries carry the tag in
``org.opencontainers.image.ref.name``, and content in ``blobs/sha256/<hex>``. Blobs are written to
a temporary file, hashed, then renamed, so a layout never holds bytes under the wrong digest; and
every read is hashed again, since a layout on disk is as untrusted as a registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from trustkit._fs import atomic_write, file_lock, read_bounded
from trustkit.errors import BadInputError, DigestMismatchError, NotFoundError, StorageError
from trustkit.refs import validate_digest
from trustkit.registry.model import (
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    BlobSink,
    Descriptor,
    ManifestBlob,
    detect_media_type,
    sha256_digest,
)

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = "1.0.0"
MAX_INDEX_SIZE = 4 * 1024 * 1024
READ_CHUNK = 1024 * 1024


class OCILayout:
    """An OCI image layout directory: manifests, blobs and tags."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # --- structure --------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.path / "index.json"

    def blob_path(self, digest: str) -> Path:
        validate_digest(digest)
        return self.path / "blobs" / "sha256" / digest.split(":", 1)[1]

    def exists(self) -> bool:
        return (self.path / LAYOUT_FILE).is_file()

    def init(self) -> None:
        """Create the layout if needed (idempotent)."""
        try:
            (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create OCI layout {self.path}: {exc.strerror}") from exc
        if not (self.path / LAYOUT_FILE).exists():
            atomic_write(
                self.path / LAYOUT_FILE,
                json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode(),
                mode=0o644,
            )
        if not self.index_path.exists():
            self._write_index([])

    def _require(self) -> None:
        if not self.exists():
            raise BadInputError(
                f"{self.path} is not an OCI image layout (no {LAYOUT_FILE} file)",
                hint="give the directory that holds oci-layout and index.json",
            )

    def index_entries(self) -> list[Descriptor]:
        self._require()
        try:
            raw = read_bounded(self.index_path, MAX_INDEX_SIZE, what="OCI index")
        except FileNotFoundError as exc:
            raise BadInputError(f"OCI layout {self.path} has no index.json") from exc
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BadInputError(f"OCI layout {self.path}: index.json is not JSON") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
            raise BadInputError(f"OCI layout {self.path}: index.json is malformed")
        return [Descriptor.from_dict(m) for m in doc.get("manifests", [])]

    def _write_index(self, entries: list[Descriptor]) -> None:
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [e.to_dict() for e in entries],
        }
        atomic_write(self.index_path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o644)

    def tags(self) -> list[str]:
        return [
            e.annotations[REF_NAME]
            for e in self.index_entries()
            if e.annotations and REF_NAME in e.annotations
        ]

    def resolve(self, reference: str | None) -> Descriptor:
        """The index.json entry for a tag (or the only entry when no tag is given)."""
        entries = self.index_entries()
        if reference is None:
            if len(entries) == 1:
                return entries[0]
            raise BadInputError(
                f"OCI layout {self.path} holds {len(entries)} images: name one as oci:PATH:TAG"
            )
        if reference.startswith("sha256:"):
            for entry in entries:
                if entry.digest == reference:
                    return entry
            if self.blob_path(reference).is_file():
                return Descriptor("", reference, self.blob_path(reference).stat().st_size)
            raise NotFoundError(f"OCI layout {self.path} has no manifest {reference}")
        matches = [e for e in entries if (e.annotations or {}).get(REF_NAME) == reference]
        if not matches:
            raise NotFoundError(
                f"OCI layout {self.path} has no tag {reference!r}",
                hint=f"tags present: {', '.join(self.tags()) or 'none'}",
            )
        return matches[-1]

    # --- manifests --------------------------------------------------------------------------
    def get_manifest(
        self, reference: str | None, *, expected_digest: str | None = None
    ) -> ManifestBlob:
        entry = self.resolve(reference)
        if expected_digest is not None and entry.digest != expected_digest:
            raise DigestMismatchError(
                f"OCI layout {self.path}:{reference} points at {entry.digest}, "
                f"not the expected {expected_digest}",
                hint="the tag was moved after it was trusted; do not use this image",
            )
        data = self.read_blob(entry.digest, max_size=MAX_MANIFEST_SIZE)
        return ManifestBlob(data, detect_media_type(data, entry.media_type or None))

    def put_manifest(
        self, reference: str | None, data: bytes, media_type: str, *, top_level: bool = True
    ) -> str:
        """Store a manifest; a tag (or ``top_level``) also records it in index.json."""
        digest = self.write_blob(data, sha256_digest(data))
        tag = None if reference is None or reference.startswith("sha256:") else reference
        if tag is None and not top_level:
            return digest
        descriptor = Descriptor(
            media_type, digest, len(data), {REF_NAME: tag} if tag is not None else None
        )
        with file_lock(self.path / ".index.lock"):
            entries = [
                e
                for e in self.index_entries()
                if not (tag is not None and (e.annotations or {}).get(REF_NAME) == tag)
                and not (tag is None and e.digest == digest and not e.annotations)
            ]
            entries.append(descriptor)
            self._write_index(entries)
        return digest

    # --- blobs ------------------------------------------------------------------------------
    def blob_exists(self, digest: str) -> bool:
        """Whether the layout holds ``digest``: a regular file that hashes to it. A file planted
        under the name (or a symlink) does not count, so a copy replaces it."""
        return self._holds(digest)

    def _holds(self, digest: str) -> bool:
        try:
            fd = os.open(self.blob_path(digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False  # absent, a symlink (ELOOP), unreadable: write it afresh
        hasher = hashlib.sha256()
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            while chunk := os.read(fd, READ_CHUNK):
                hasher.update(chunk)
        except OSError:
            return False
        finally:
            os.close(fd)
        return "sha256:" + hasher.hexdigest() == digest

    def read_blob(self, digest: str, *, max_size: int) -> bytes:
        path = self.blob_path(digest)
        try:
            data = read_bounded(path, max_size, what=f"blob {digest}")
        except FileNotFoundError as exc:
            raise NotFoundError(f"OCI layout {self.path} has no blob {digest}") from exc
        if sha256_digest(data) != digest:
            raise DigestMismatchError(
                f"blob {digest} in OCI layout {self.path} does not match its digest",
                hint="the layout was modified on disk; do not use it",
            )
        return data

    def copy_blob(self, digest: str, size: int, sink: BlobSink | None) -> None:
        """Stream a verified blob into ``sink`` (or just verify it when ``sink`` is None)."""
        path = self.blob_path(digest)
        hasher = hashlib.sha256()
        total = 0
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(READ_CHUNK):
                    total += len(chunk)
                    if total > size:
                        break
                    hasher.update(chunk)
                    if sink is not None:
                        sink.write(chunk)
        except FileNotFoundError as exc:
            raise NotFoundError(f"OCI layout {self.path} has no blob {digest}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        if total != size or "sha256:" + hasher.hexdigest() != digest:
            raise DigestMismatchError(
                f"blob {digest} in OCI layout {self.path} does not match its descriptor",
                hint="the layout was modified on disk; do not use it",
            )

    def write_blob(self, data: bytes | BinaryIO, digest: str) -> str:
        """Write a blob, hashing it on the way; refused (and not kept) if it hashes otherwise."""
        target = self.blob_path(digest)
        if self._holds(digest):
            return digest  # already there and verified; anything else under the name is replaced
        self.init()
        hasher = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes):
                    hasher.update(data)
                    out.write(data)
                else:
                    data.seek(0)
                    while chunk := data.read(READ_CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest:
                raise DigestMismatchError(f"blob hashes to {actual}, not {digest}; not stored")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(
                f"cannot write blob {digest} in {self.path}: {exc.strerror}"
            ) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return digest

    @contextlib.contextmanager
    def verified_blob_sink(self, digest: str) -> Iterator[BinaryIO]:
        """A temporary file in the layout to stream ``digest``'s bytes into, which becomes the
        blob only if the block ends without an error: the block must verify what it wrote
        against ``digest`` (an ``ImageLocation.fetch_blob`` does, raising on any other bytes).

        The pull path: each blob is written once and hashed once (by that verification), not
        spooled to a temporary file, then hashed and copied again as ``write_blob`` would.
        """
        target = self.blob_path(digest)
        self.init()
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        except OSError as exc:
            raise StorageError(f"cannot write in {self.path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise StorageError(
                        f"cannot write blob {digest} in {self.path}: {exc.strerror}"
                    ) from exc
            try:
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except OSError as exc:
                raise StorageError(
                    f"cannot write blob {digest} in {self.path}: {exc.strerror}"
                ) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def parse_layout_text(text: str) -> tuple[Path, str | None]:
    """``oci:PATH[:TAG]`` or ``oci:PATH@sha256:...`` → (path, tag-or-digest)."""
    if not text.startswith("oci:"):
        raise BadInputError(f"not an OCI layout reference: {text!r}")
    rest = text[len("oci:") :]
    reference: str | None = None
    if "@sha256:" in rest:
        rest, _, digest = rest.rpartition("@")
        reference = validate_digest(digest)
    else:
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, reference = rest[:colon], rest[colon + 1 :] or None
    if not rest:
        raise BadInputError(f"OCI layout reference {text!r} names no directory")
    if reference is not None and not reference.startswith("sha256:"):
        from trustkit.refs import validate_tag

        validate_tag(reference)
    return Path(rest).expanduser(), reference
