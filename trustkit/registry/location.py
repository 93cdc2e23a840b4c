"""One interface over "a repository in a registry" and "an OCI layout directory".

``open_image_location(registries, text)`` takes ``oci:PATH[:TAG]`` or a registry reference and
returns an ``ImageLocation``; copy, pull and the attestation code use only this interface. Its
registry clients come from the process's ``RegistryPool`` and stay open when the location is
closed (connections and tokens are reused for the next image). A
registry location carries its pull mirrors: content-addressed reads (manifests by digest, blobs)
try each mirror in order and then the registry, and accept only bytes that hash to the digest.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

import httpx

from trustkit.config import Settings
from trustkit.errors import BadInputError, DigestMismatchError, TrustkitError
from trustkit.refs import ImageRef, parse
from trustkit.registry.client import RegistryClient
from trustkit.registry.layout import OCILayout, parse_layout_text
from trustkit.registry.model import BlobSink, Descriptor, ManifestBlob
from trustkit.registry.pool import RegistryPool

T = TypeVar("T")
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@runtime_checkable
class ImageLocation(Protocol):
    """Where an image is read from or written to."""

    @property
    def reference(self) -> str | None:
        """The tag or digest named by the user (None: an OCI layout's only image)."""

    @property
    def ref(self) -> ImageRef | None:
        """The registry reference; None for an OCI layout."""

    def describe(self) -> str: ...
    def get_manifest(
        self, reference: str | None, *, expected_digest: str | None = None
    ) -> ManifestBlob: ...
    def put_manifest(
        self, reference: str | None, data: bytes, media_type: str, *, top_level: bool = True
    ) -> str: ...
    def blob_exists(self, digest: str) -> bool: ...
    def get_blob(self, digest: str, *, max_size: int) -> bytes: ...
    def fetch_blob(self, desc: Descriptor, sink: BlobSink | None) -> None: ...
    def upload_blob(self, desc: Descriptor, data: bytes | BinaryIO) -> None: ...
    def try_mount(self, desc: Descriptor, source: ImageLocation) -> bool: ...
    def list_tags(self) -> list[str]: ...
    def referrers(
        self, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None: ...
    def close(self) -> None: ...


@contextlib.contextmanager
def verified_blob_file(src: ImageLocation, desc: Descriptor) -> Iterator[BinaryIO]:
    """A temporary file holding the blob, already checked against ``desc``."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        src.fetch_blob(desc, spool)
        spool.seek(0)
        yield spool  # type: ignore[misc]


@dataclass
class Source:
    """A registry (or mirror) and the repository path to use there."""

    client: RegistryClient
    repo_path: str
    label: str


@dataclass
class RegistryLocation:
    """A repository in a registry, plus its pull mirrors."""

    client: RegistryClient
    image: ImageRef
    mirrors: list[Source] = field(default_factory=list)
    #: a pool made for this location alone (the caller passed bare Settings): closed with it.
    #: Clients of the process's shared pool are never closed by per-image code.
    owned_pool: RegistryPool | None = None

    @property
    def ref(self) -> ImageRef:
        return self.image

    @property
    def reference(self) -> str | None:
        return self.ref.digest or self.ref.tag

    @property
    def repo_path(self) -> str:
        return self.ref.path

    def describe(self) -> str:
        return str(self.ref)

    def _sources(self) -> list[Source]:
        return [*self.mirrors, Source(self.client, self.ref.path, self.client.host)]

    def _first_good(self, what: str, attempt: Callable[[Source], T]) -> T:
        """Try mirrors then the registry; content that fails its digest check is never used."""
        failures: list[str] = []
        mismatch = False
        last: TrustkitError | None = None
        for source in self._sources():
            try:
                return attempt(source)
            except DigestMismatchError as exc:
                mismatch, last = True, exc
                failures.append(f"{source.label}: {exc}")
            except TrustkitError as exc:
                last = exc
                failures.append(f"{source.label}: {exc}")
        assert last is not None
        if len(failures) == 1:
            raise last
        if mismatch:
            raise DigestMismatchError(
                f"no source served {what} with the trusted digest: " + "; ".join(failures),
                hint="a mirror or registry serves other bytes; fix or remove it",
            )
        raise type(last)("; ".join(failures), hint=last.hint)

    def get_manifest(
        self, reference: str | None, *, expected_digest: str | None = None
    ) -> ManifestBlob:
        reference = reference or self.reference or "latest"
        if reference.startswith("sha256:"):
            expected_digest = expected_digest or reference
        if expected_digest is None:
            # A tag without a trusted digest is resolved by the registry itself, never a mirror.
            return self.client.get_manifest(self.ref.path, reference)
        digest = expected_digest
        return self._first_good(
            f"manifest {digest}",
            lambda s: s.client.get_manifest(s.repo_path, digest, expected_digest=digest),
        )

    def put_manifest(
        self, reference: str | None, data: bytes, media_type: str, *, top_level: bool = True
    ) -> str:
        from trustkit.registry.model import sha256_digest

        return self.client.put_manifest(
            self.ref.path, reference or sha256_digest(data), data, media_type
        )

    def blob_exists(self, digest: str) -> bool:
        return self.client.blob_exists(self.ref.path, digest)

    def get_blob(self, digest: str, *, max_size: int) -> bytes:
        return self._first_good(
            f"blob {digest}", lambda s: s.client.get_blob(s.repo_path, digest, max_size=max_size)
        )

    def fetch_blob(self, desc: Descriptor, sink: BlobSink | None) -> None:
        def attempt(source: Source) -> None:
            if sink is not None:
                sink.seek(0)
                sink.truncate()
            source.client.fetch_blob(source.repo_path, desc.digest, desc.size, sink)

        self._first_good(f"blob {desc.digest}", attempt)

    def upload_blob(self, desc: Descriptor, data: bytes | BinaryIO) -> None:
        self.client.upload_blob(self.ref.path, data, desc.digest, size=desc.size)

    def try_mount(self, desc: Descriptor, source: ImageLocation) -> bool:
        if not isinstance(source, RegistryLocation) or source.client.host != self.client.host:
            return False
        if source.ref.path == self.ref.path:
            return False
        return self.client.mount_blob(self.ref.path, desc.digest, source.ref.path)

    def list_tags(self) -> list[str]:
        """The image tags: trust-data and signature tags (``is_reserved_tag``) are skipped."""
        from trustkit.registry.reserved import is_reserved_tag

        return [t for t in self.client.list_tags(self.ref.path) if not is_reserved_tag(t)]

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        return self.client.referrers(self.ref.path, digest, artifact_type)

    def close(self) -> None:
        if self.owned_pool is not None:
            self.owned_pool.close()


@dataclass
class LayoutLocation:
    """An image in an OCI layout directory."""

    layout: OCILayout
    tag_or_digest: str | None = None

    @property
    def reference(self) -> str | None:
        return self.tag_or_digest

    @property
    def ref(self) -> ImageRef | None:
        return None

    def describe(self) -> str:
        suffix = ""
        if self.reference:
            sep = "@" if self.reference.startswith("sha256:") else ":"
            suffix = sep + self.reference
        return f"oci:{self.layout.path}{suffix}"

    def get_manifest(
        self, reference: str | None, *, expected_digest: str | None = None
    ) -> ManifestBlob:
        return self.layout.get_manifest(
            reference if reference is not None else self.reference, expected_digest=expected_digest
        )

    def put_manifest(
        self, reference: str | None, data: bytes, media_type: str, *, top_level: bool = True
    ) -> str:
        self.layout.init()
        return self.layout.put_manifest(reference, data, media_type, top_level=top_level)

    def blob_exists(self, digest: str) -> bool:
        return self.layout.blob_exists(digest)

    def get_blob(self, digest: str, *, max_size: int) -> bytes:
        return self.layout.read_blob(digest, max_size=max_size)

    def fetch_blob(self, desc: Descriptor, sink: BlobSink | None) -> None:
        self.layout.copy_blob(desc.digest, desc.size, sink)

    def upload_blob(self, desc: Descriptor, data: bytes | BinaryIO) -> None:
        self.layout.write_blob(data, desc.digest)

    def try_mount(self, desc: Descriptor, source: ImageLocation) -> bool:
        return False

    def list_tags(self) -> list[str]:
        return self.layout.tags()

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        return None

    def close(self) -> None:
        return None


def mirror_source(pool: RegistryPool, url: str, repo_path: str) -> Source:
    """A mirror URL (``https://host[:port][/prefix]`` or ``host[:port]``) as a Source."""
    text = url if "://" in url else f"//{url}"
    parsed = httpx.URL(text) if "://" in url else httpx.URL("https:" + text)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadInputError(f"mirror {url!r} is not an http(s) URL or host[:port]")
    host = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    if ":" in parsed.host:  # IPv6 literal
        host = f"[{parsed.host}]" + (f":{parsed.port}" if parsed.port else "")
    prefix = parsed.path.strip("/")
    scheme = parsed.scheme if "://" in url else None
    client = pool.client(host, scheme=scheme)
    return Source(client, f"{prefix}/{repo_path}" if prefix else repo_path, f"mirror {url}")


def as_pool(registries: RegistryPool | Settings) -> tuple[RegistryPool, bool]:
    """(the pool to use, whether the caller made it for this call alone and must close it).

    Transitional: library callers that still pass ``Settings`` get a one-off pool, which is
    exactly the old behaviour (a fresh config parse and fresh clients per image).
    """
    if isinstance(registries, RegistryPool):
        return registries, False
    return RegistryPool(registries), True


def open_registry_location(registries: RegistryPool | Settings, ref: ImageRef) -> RegistryLocation:
    pool, owned = as_pool(registries)
    try:
        client = pool.client(ref.domain)
        mirrors = [
            mirror_source(pool, url, ref.path) for url in pool.config.for_host(ref.domain).mirrors
        ]
    except BaseException:
        if owned:
            pool.close()
        raise
    return RegistryLocation(client, ref, mirrors, owned_pool=pool if owned else None)


def open_image_location(registries: RegistryPool | Settings, text: str) -> ImageLocation:
    """``oci:PATH[:TAG]`` (an OCI layout) or an image reference (a registry repository).

    ``registries`` is the process's pool (``Services.registries``); bare ``Settings`` is the
    transitional form and opens a pool of the location's own.
    """
    if text.startswith("oci:"):
        path, reference = parse_layout_text(text)
        return LayoutLocation(OCILayout(path), reference)
    return open_registry_location(registries, parse(text))
