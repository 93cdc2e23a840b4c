"""The registry store: a collection's TUF metadata kept as an OCI artifact in the image's own
repository (ADR 0011), so trust data travels with the image and needs no other server.

Layout, per repository: the tag ``trustkit-tuf`` names one OCI image manifest (OCI empty
config) whose layers are the metadata files, ``application/vnd.tuf.metadata+json``, each named
by a ``tuf.io/filename`` annotation with its consistent-snapshot name (``3.targets.json``,
``2.targets%2Freleases.json``): every root version, exactly one timestamp and the newest
``keep`` versions of every other role. Moving that tag is the commit point; every file is
fetched by digest from the manifest resolved at the start of a refresh, so one refresh reads
one consistent set, and mirrors may serve the blobs (they are hashed, and TUF verifies them).

Registries have no compare-and-swap on tags, so a publish is optimistic and claims the next
version first (Fischer's timed mutual exclusion on the ``trustkit-tuf-claim`` tag): a writer
checks nobody else holds a live claim on the set it read, writes its claim, waits ``settle``
seconds, and moves ``trustkit-tuf`` only when its claim is still the one there and the head is
still the set it read. Otherwise ``ConflictError``: the engine reloads, re-applies its change
and publishes a higher version, so no change is lost and readers never see two sets with one
version. A writer killed at any step leaves the previous set readable; its claim stops
blocking others after ``claim_ttl`` seconds.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from trustkit.errors import (
    BadInputError,
    ConflictError,
    DigestMismatchError,
    InputTooLargeError,
    NotFoundError,
    RegistryError,
    StorageError,
    TamperedMetadataError,
)
from trustkit.refs import ImageRef, parse
from trustkit.registry.model import OCI_EMPTY_JSON, OCI_MANIFEST, sha256_digest
from trustkit.registry.reserved import TRUST_TAG_PREFIX
from trustkit.stores.interface import (
    MAX_PENDING_LISTED,
    PENDING_ID_RE,
    MetadataFile,
    MetadataNotFoundError,
    MetadataStore,
    PendingChanges,
    PendingNotFoundError,
    StoreCapabilities,
    check_expected,
    check_pending_id,
    metadata_filename,
)

if TYPE_CHECKING:
    from trustkit.registry.location import RegistryLocation
    from trustkit.registry.pool import RegistryPool
    from trustkit.services import Services

TUF_MEDIA_TYPE = "application/vnd.tuf.metadata+json"
ARTIFACT_TYPE = "application/vnd.trustkit.tuf.collection.v1"
CLAIM_ARTIFACT_TYPE = "application/vnd.trustkit.tuf.claim.v1"
FILENAME_ANNOTATION = "tuf.io/filename"
PENDING_MEDIA_TYPE = "application/vnd.trustkit.tuf.pending.v1+json"
PENDING_ARTIFACT_TYPE = "application/vnd.trustkit.tuf.pending.v1"
TOMBSTONE_ARTIFACT_TYPE = "application/vnd.trustkit.tuf.removed.v1"
HEAD_TAG = TRUST_TAG_PREFIX
PENDING_TAG_PREFIX = f"{TRUST_TAG_PREFIX}-pending-"
CLAIM_TAG = f"{TRUST_TAG_PREFIX}-claim"
EMPTY_CONFIG = b"{}"
EMPTY_DIGEST = sha256_digest(EMPTY_CONFIG)
#: layers one metadata manifest may list (far above a collection with hash-bin delegations)
MAX_FILES = 16_384
#: a claim manifest is a few hundred bytes; anything larger is not one of ours
MAX_CLAIM_BYTES = 64 * 1024
_NAME_RE = re.compile(r"\A([1-9][0-9]{0,17})\.([A-Za-z0-9%._-]{1,400})\.json\Z")
_CLAIM_KEYS = ("parent", "next", "nonce", "time")
_TAG_READ_ATTEMPTS = 3
#: ``_get_tagged``'s answer for "the manifest is still the one you hold"
_UNCHANGED = b"\x00unchanged"
#: the parent of a claim its writer completed
RELEASED = "released"


@dataclass(frozen=True)
class OciOptions:
    """Tunables, from the store URL's query (``registry://?keep=8&settle=0.5``)."""

    #: versions kept of each role other than root (every root version is kept)
    keep: int = 4
    #: seconds a writer waits between claiming the next version and publishing it: longer than
    #: any other writer's gap between reading the claim tag and writing its own (one round trip)
    settle: float = 0.5
    #: seconds after which a claim nobody completed (a killed writer) no longer blocks others
    claim_ttl: float = 30.0

    @classmethod
    def from_query(cls, query: str, url: str) -> OciOptions:
        def bad(what: str) -> BadInputError:
            return BadInputError(
                f"trust server {url!r}: {what}",
                hint="e.g. registry://?keep=4&settle=0.5&claim_ttl=30",
            )

        values = parse_qs(query, keep_blank_values=True)
        unknown = set(values) - {"keep", "settle", "claim_ttl"}
        if unknown:
            raise bad(f"unknown option(s) {', '.join(sorted(unknown))}")
        options = cls()
        try:
            keep = int(values["keep"][-1]) if "keep" in values else options.keep
            settle = float(values["settle"][-1]) if "settle" in values else options.settle
            ttl = float(values["claim_ttl"][-1]) if "claim_ttl" in values else options.claim_ttl
        except ValueError:
            raise bad("keep is a whole number; settle and claim_ttl are seconds") from None
        if not 1 <= keep <= 1000:
            raise bad("keep must be between 1 and 1000")
        if not 0 <= settle <= 60 or not settle < ttl <= 86_400:
            raise bad("settle must be 0-60 s and claim_ttl longer than settle (at most a day)")
        return cls(keep, settle, ttl)


@dataclass(frozen=True)
class _Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class _View:
    """One resolved metadata manifest: the consistent set a refresh reads."""

    digest: str
    files: dict[str, _Blob]
    root: int
    timestamp: str

    @property
    def generation(self) -> str:
        """What writers compare: the current timestamp and root. Not the manifest digest, so
        files served beside the set (an attacker's plants, pruning) are no publish."""
        token = f"{self.root}|{self.files[self.timestamp].digest}"
        return "gen-" + sha256_digest(token.encode()).removeprefix("sha256:")[:32]


@dataclass(frozen=True)
class _Claim:
    parent: str
    next: str
    nonce: str
    time: float


class OciStore(MetadataStore):
    """TUF metadata in OCI registries, one collection per repository.

    ``host`` None: each collection lives in the repository its GUN names (``registry://``).
    ``host`` given (``oci://host[:port]/prefix``): every collection lives in that registry,
    under ``prefix/<gun host>/<gun path>``, e.g. a central trust registry, or tests.
    """

    def __init__(
        self,
        registries: RegistryPool,
        *,
        host: str | None = None,
        prefix: str = "",
        options: OciOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registries = registries
        self.host = host
        self.prefix = prefix.strip("/")
        self.options = options or OciOptions()
        self._clock = clock
        where = f"{host}/{self.prefix}".rstrip("/") if host else "each image's own registry"
        self.description = f"registry trust store ({where})"
        self._views: dict[str, _View | None] = {}
        self._locations: dict[str, RegistryLocation] = {}
        self._lock = threading.Lock()

    # --- where a collection lives -----------------------------------------------------------
    def location(self, gun: str) -> RegistryLocation:
        """The repository holding ``gun``'s metadata (with the registry's pull mirrors)."""
        from trustkit.registry.location import RegistryLocation, mirror_source

        with self._lock:
            found = self._locations.get(gun)
        if found is not None:
            return found
        image = _gun_image(gun)
        if self.host is not None:
            sanitized = re.sub(r"[^a-z0-9._-]", "-", image.domain.lower())
            path = "/".join(p for p in (self.prefix, sanitized, image.path) if p)
            image = ImageRef(self.host, path)
        client = self.registries.client(image.domain)
        mirrors = [
            mirror_source(self.registries, url, image.path)
            for url in self.registries.config.for_host(image.domain).mirrors
        ]
        location = RegistryLocation(client, image, mirrors)
        with self._lock:
            self._locations[gun] = location
        return location

    # --- reading --------------------------------------------------------------------------
    def _resolve(self, gun: str) -> _View | None:
        """Resolve ``trustkit-tuf`` now (from the registry itself, never a mirror)."""
        location = self.location(gun)
        with self._lock:
            known = self._views.get(gun)
        if known is not None:
            # unchanged since the last refresh: a 304 instead of the whole manifest again
            data = _get_tagged(location, HEAD_TAG, known.digest)
            if data is _UNCHANGED:
                return known
        else:
            data = _get_tagged(location, HEAD_TAG)
        assert data is not _UNCHANGED
        view = None if data is None else _parse_view(data, sha256_digest(data), gun)
        with self._lock:
            self._views[gun] = view
        return view

    def _view(self, gun: str) -> _View | None:
        """The set resolved at the start of this refresh (``exists``, ``generation`` or the
        current timestamp's read)."""
        with self._lock:
            if gun in self._views:
                return self._views[gun]
        return self._resolve(gun)

    def exists(self, gun: str) -> bool:
        return self._resolve(gun) is not None

    def generation(self, gun: str) -> str | None:
        view = self._resolve(gun)
        return None if view is None else view.generation

    def root_version(self, gun: str) -> int:
        view = self._view(gun)
        return 0 if view is None else view.root

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        # the current timestamp starts a refresh: resolve the set it and the files it names
        # (read next, by version) come from
        view = self._resolve(gun) if version is None else self._view(gun)
        if view is None:
            raise MetadataNotFoundError(f"no trust data for {gun} in {self.description}")
        if version is None:
            if role != "timestamp":
                raise MetadataNotFoundError(f"{role} is only served by version")
            name = view.timestamp
        elif role == "timestamp":
            raise MetadataNotFoundError("the timestamp is only served as the current one")
        else:
            name = metadata_filename(role, version)
        blob = view.files.get(name)
        if blob is None:
            raise MetadataNotFoundError(f"{name} of {gun} is not in {self.description}")
        if blob.size > limit:
            raise InputTooLargeError(
                f"{role} metadata of {gun} is larger than the {limit}-byte limit"
            )
        location = self.location(gun)
        try:
            return location.get_blob(blob.digest, max_size=blob.size)
        except (DigestMismatchError, InputTooLargeError) as exc:
            raise TamperedMetadataError(
                f"{role} metadata of {gun} does not match its hash or length in the "
                f"metadata manifest ({exc.one_line()})"
            ) from None
        except NotFoundError:
            raise StorageError(
                f"{name} of {gun} is missing from {location.describe()} "
                "(listed in the metadata manifest, but the registry cannot fetch it)",
                hint="publish the collection again, or restore the registry's storage",
            ) from None

    # --- publishing -----------------------------------------------------------------------
    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(server_signed_roles=frozenset(), pending_changes=True)

    @property
    def pending(self) -> PendingChanges:
        return _OciPending(self)

    def writing(self, gun: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # no lock to take: publish claims the next version

    def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
        self.check_publishable(gun, files)
        location = self.location(gun)
        head = self._resolve(gun)
        parent = None if head is None else head.digest
        check_expected(self.description, gun, expected, head.generation if head else None)
        blobs, manifest = self._prepare(gun, head, files)
        new_digest = sha256_digest(manifest)
        self._upload(location, blobs, head)
        mine = self._claim(gun, location, parent or "none", new_digest)
        location.put_manifest(HEAD_TAG, manifest, OCI_MANIFEST)
        landed = self._resolve(gun)
        if landed is None or landed.digest != new_digest:
            raise _lost(gun, self.description)
        self._release(location, mine)
        return landed.generation

    def _prepare(
        self, gun: str, head: _View | None, files: Sequence[MetadataFile]
    ) -> tuple[dict[str, bytes], bytes]:
        """The new set's new blobs (by digest) and its manifest: the head's files plus
        ``files``, one timestamp, old versions pruned."""
        current = dict(head.files) if head is not None else {}
        blobs: dict[str, bytes] = {}
        for item in files:
            name = metadata_filename(item.role, item.version)
            digest = sha256_digest(item.data)
            blobs[digest] = item.data
            current[name] = _Blob(digest, len(item.data))
        if not any(f.role == "timestamp" for f in files) and head is not None:
            current[head.timestamp] = head.files[head.timestamp]
        timestamp = next(
            (metadata_filename("timestamp", f.version) for f in files if f.role == "timestamp"),
            head.timestamp if head is not None else None,
        )
        kept = _pruned(current, timestamp, self.options.keep)
        if len(kept) > MAX_FILES:
            raise StorageError(f"{gun} would have more than {MAX_FILES} metadata files")
        return blobs, _manifest(gun, kept)

    def _upload(
        self, location: RegistryLocation, blobs: dict[str, bytes], head: _View | None
    ) -> None:
        known = {b.digest for b in head.files.values()} if head is not None else set()
        _ensure_empty_config(location)
        for digest, data in blobs.items():
            if digest not in known:
                location.client.upload_blob(location.repo_path, data, digest)

    def _read_claim(self, location: RegistryLocation) -> _Claim | None:
        data = _get_tagged(location, CLAIM_TAG)
        return None if data is None else _parse_claim(data)

    def _release(self, location: RegistryLocation, mine: _Claim) -> None:
        """Mark a completed claim as released, so it blocks nobody even if the head is later
        moved back to its parent (a restored registry). Best effort: a claim left behind
        only blocks writers for ``claim_ttl`` seconds."""
        with contextlib.suppress(RegistryError):
            if self._read_claim(location) == mine:
                released = _Claim(RELEASED, mine.next, mine.nonce, mine.time)
                location.put_manifest(CLAIM_TAG, _claim_manifest(released), OCI_MANIFEST)

    def _claim(self, gun: str, location: RegistryLocation, parent: str, new: str) -> _Claim:
        """Hold the claim on the version after ``parent`` for ``settle`` seconds, then make
        sure it is still ours and the head is still ``parent``; ConflictError otherwise."""
        now = self._clock()
        other = self._read_claim(location)
        if other is not None and other.parent == parent and self._live(other, now):
            # another writer is publishing the version after ours: it wins. Wait (bounded)
            # until it is done, so the caller's retry reloads its set instead of ours again.
            deadline = time.monotonic() + 10 * self.options.settle + 2
            while time.monotonic() < deadline:
                time.sleep(max(self.options.settle / 2, 0.01))
                again = self._read_claim(location)
                if again != other:
                    break
            raise ConflictError(
                f"another writer is publishing {gun} in {self.description}",
                hint="run the command again: it reloads the new trust data and re-applies "
                "the change",
            )
        mine = _Claim(parent, new, secrets.token_hex(16), now)
        location.put_manifest(CLAIM_TAG, _claim_manifest(mine), OCI_MANIFEST)
        time.sleep(self.options.settle)
        if self._read_claim(location) != mine:
            raise _lost(gun, self.description)
        head = self._resolve(gun)
        if (head.digest if head is not None else "none") != parent:
            raise _lost(gun, self.description)
        return mine

    def _live(self, claim: _Claim, now: float) -> bool:
        return abs(now - claim.time) < self.options.claim_ttl


class _OciPending(PendingChanges):
    """Co-signed changes waiting for signatures, one tag each in the collection's repository:
    ``trustkit-tuf-pending-<id>`` names a manifest with one layer, the change's bytes (untrusted:
    writers verify them before counting a signature). Removing deletes the manifest, or, where
    the registry forbids deletes, tags a tombstone in its place."""

    def __init__(self, store: OciStore) -> None:
        self.store = store

    def _tag(self, pending_id: str) -> str:
        return PENDING_TAG_PREFIX + check_pending_id(pending_id)

    def _manifest(self, location: RegistryLocation, pending_id: str) -> dict[str, Any] | None:
        data = _get_tagged(location, self._tag(pending_id))
        if data is None or len(data) > MAX_CLAIM_BYTES:
            return None
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(doc, dict) or doc.get("artifactType") != PENDING_ARTIFACT_TYPE:
            return None  # a tombstone, or not ours
        return doc

    def list(self, gun: str) -> builtins.list[str]:
        location = self.store.location(gun)
        ids = sorted(
            tag[len(PENDING_TAG_PREFIX) :]
            for tag in location.client.list_tags(location.repo_path)
            if tag.startswith(PENDING_TAG_PREFIX)
            and PENDING_ID_RE.match(tag[len(PENDING_TAG_PREFIX) :])
        )
        return [i for i in ids[:MAX_PENDING_LISTED] if self._manifest(location, i) is not None]

    def read(self, gun: str, pending_id: str, *, limit: int) -> bytes:
        location = self.store.location(gun)
        doc = self._manifest(location, pending_id)
        layers = doc.get("layers") if doc is not None else None
        if not isinstance(layers, builtins.list) or len(layers) != 1:
            raise PendingNotFoundError(f"no pending change {pending_id} for {gun}")
        layer = layers[0]
        digest, size = layer.get("digest"), layer.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
            raise PendingNotFoundError(f"pending change {pending_id} of {gun} is malformed")
        if size > limit:
            raise InputTooLargeError(
                f"pending change {pending_id} of {gun} is larger than the {limit}-byte limit"
            )
        return location.get_blob(digest, max_size=size)

    def write(self, gun: str, pending_id: str, data: bytes) -> None:
        location = self.store.location(gun)
        tag = self._tag(pending_id)
        digest = sha256_digest(data)
        _ensure_empty_config(location)
        location.client.upload_blob(location.repo_path, data, digest)
        layer = {"mediaType": PENDING_MEDIA_TYPE, "digest": digest, "size": len(data)}
        location.put_manifest(
            tag, _artifact(PENDING_ARTIFACT_TYPE, [layer], pending_id), OCI_MANIFEST
        )

    def remove(self, gun: str, pending_id: str) -> None:
        location = self.store.location(gun)
        tag = self._tag(pending_id)
        data = _get_tagged(location, tag)
        if data is None:
            return
        if not location.client.delete_manifest(location.repo_path, sha256_digest(data)):
            tombstone = _artifact(TOMBSTONE_ARTIFACT_TYPE, [_empty_descriptor()], pending_id)
            location.put_manifest(tag, tombstone, OCI_MANIFEST)


class _RoutedPending(PendingChanges):
    """Each collection's pending changes in the store that holds the collection."""

    def __init__(self, store: ImageRegistryStore) -> None:
        self.store = store

    def list(self, gun: str) -> builtins.list[str]:
        return self.store.store_for(gun).pending.list(gun)

    def read(self, gun: str, pending_id: str, *, limit: int) -> bytes:
        return self.store.store_for(gun).pending.read(gun, pending_id, limit=limit)

    def write(self, gun: str, pending_id: str, data: bytes) -> None:
        self.store.store_for(gun).pending.write(gun, pending_id, data)

    def remove(self, gun: str, pending_id: str) -> None:
        self.store.store_for(gun).pending.remove(gun, pending_id)


def _ensure_empty_config(location: RegistryLocation) -> None:
    if not location.client.blob_exists(location.repo_path, EMPTY_DIGEST):
        location.client.upload_blob(location.repo_path, EMPTY_CONFIG, EMPTY_DIGEST)


def _artifact(artifact_type: str, layers: builtins.list[dict[str, Any]], pending_id: str) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _empty_descriptor(),
        "layers": layers,
        # the id makes every pending manifest distinct: deleting one by digest never drops another
        "annotations": {"io.trustkit.tuf.pending": pending_id},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


class ImageRegistryStore(MetadataStore):
    """``registry://``: each image's trust data in its own registry, unless ``registries.json``
    names another trust server for that registry (``"trust_server": "file:///..."``).

    Also wraps any other default store when ``registries.json`` overrides some registries."""

    def __init__(
        self,
        registries: RegistryPool,
        open_url: Callable[[str], MetadataStore],
        *,
        default: MetadataStore | None = None,
        options: OciOptions | None = None,
    ) -> None:
        self.registries = registries
        self._open_url = open_url
        self.registry_store = OciStore(registries, options=options)
        self.default = default or self.registry_store
        self.description = (
            self.registry_store.description if default is None else default.description
        )
        self._opened: dict[str, MetadataStore] = {}
        self._lock = threading.Lock()

    def store_for(self, gun: str) -> MetadataStore:
        override = self.registries.config.for_host(_gun_image(gun).domain).trust_server
        if override is None:
            return self.default
        if override == "registry":
            return self.registry_store
        with self._lock:
            store = self._opened.get(override)
            if store is None:
                store = self._open_url(override)
                self._opened[override] = store
            return store

    @property
    def capabilities(self) -> StoreCapabilities:
        return self.default.capabilities

    @property
    def pending(self) -> PendingChanges:
        return _RoutedPending(self)

    def exists(self, gun: str) -> bool:
        return self.store_for(gun).exists(gun)

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        return self.store_for(gun).read(gun, role, version, limit=limit)

    def root_version(self, gun: str) -> int:
        return self.store_for(gun).root_version(gun)

    def generation(self, gun: str) -> str | None:
        return self.store_for(gun).generation(gun)

    def writing(self, gun: str) -> contextlib.AbstractContextManager[None]:
        return self.store_for(gun).writing(gun)

    def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
        return self.store_for(gun).publish(gun, files, expected=expected)

    def check_publishable(self, gun: str, files: Sequence[MetadataFile]) -> None:
        self.store_for(gun).check_publishable(gun, files)


# --- opening by URL -----------------------------------------------------------------------
def _pool_of(services: Services | None) -> RegistryPool:
    if services is not None:
        return services.registries
    # opened without the process's Services (a library caller, a test): a pool of its own,
    # configured from the environment as an entry point would be
    from trustkit.config import Settings
    from trustkit.registry.pool import RegistryPool

    return RegistryPool(Settings.from_env())


def open_registry_store(
    url: str, services: Services | None, open_url: Callable[[str], MetadataStore]
) -> MetadataStore:
    """``registry://[?options]``: each image's own registry."""
    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/"):
        raise BadInputError(
            f"trust server {url!r}: registry:// names no host (each image's own registry is used)",
            hint="use oci://HOST[:PORT]/PREFIX for one registry holding every collection",
        )
    options = OciOptions.from_query(parts.query, url)
    return ImageRegistryStore(_pool_of(services), open_url, options=options)


def open_oci_store(url: str, services: Services | None) -> MetadataStore:
    """``oci://HOST[:PORT][/PREFIX][?options]``: every collection in one registry."""
    parts = urlsplit(url)
    if not parts.netloc or "@" in parts.netloc:
        raise BadInputError(
            f"trust server {url!r} names no registry host",
            hint="e.g. oci://registry.example.com/trust (credentials come from login)",
        )
    options = OciOptions.from_query(parts.query, url)
    prefix = parts.path.strip("/")
    if prefix and not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", prefix):
        raise BadInputError(f"trust server {url!r}: {prefix!r} is not a repository path")
    return OciStore(_pool_of(services), host=parts.netloc, prefix=prefix, options=options)


def with_registry_overrides(
    store: MetadataStore, services: Services, open_url: Callable[[str], MetadataStore]
) -> MetadataStore:
    """``store``, unless ``registries.json`` names a trust server for some registry: then a
    store that routes those registries' collections there and the rest to ``store``."""
    if isinstance(store, ImageRegistryStore):
        return store
    config = services.registries.config
    if not any(entry.trust_server for entry in config.registries.values()):
        return store
    return ImageRegistryStore(services.registries, open_url, default=store)


# --- the manifest format ------------------------------------------------------------------
def _gun_image(gun: str) -> ImageRef:
    try:
        image = parse(gun, default_tag=False)
    except BadInputError as exc:
        raise StorageError(f"collection {gun!r} does not name a registry repository") from exc
    if image.tag is not None or image.digest is not None:
        raise StorageError(f"collection {gun!r} must name a repository, not an image")
    return image


def _empty_descriptor() -> dict[str, Any]:
    return {"mediaType": OCI_EMPTY_JSON, "digest": EMPTY_DIGEST, "size": len(EMPTY_CONFIG)}


def _manifest(gun: str, files: dict[str, _Blob]) -> bytes:
    layers = [
        {
            "mediaType": TUF_MEDIA_TYPE,
            "digest": blob.digest,
            "size": blob.size,
            "annotations": {FILENAME_ANNOTATION: name},
        }
        for name, blob in sorted(files.items(), key=lambda item: _sort_key(item[0]))
    ]
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": _empty_descriptor(),
        "layers": layers,
        "annotations": {"io.trustkit.tuf.collection": gun},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _sort_key(name: str) -> tuple[str, int]:
    match = _NAME_RE.match(name)
    assert match is not None
    return match.group(2), int(match.group(1))


def _pruned(files: dict[str, _Blob], timestamp: str | None, keep: int) -> dict[str, _Blob]:
    """Every root, the one current timestamp, the newest ``keep`` versions of other roles."""
    by_role: dict[str, list[int]] = {}
    for name in files:
        match = _NAME_RE.match(name)
        assert match is not None
        by_role.setdefault(match.group(2), []).append(int(match.group(1)))
    kept: dict[str, _Blob] = {}
    for role, versions in by_role.items():
        if role == "timestamp":
            continue
        chosen = versions if role == "root" else sorted(versions)[-keep:]
        for version in chosen:
            name = f"{version}.{role}.json"
            kept[name] = files[name]
    if timestamp is not None:
        kept[timestamp] = files[timestamp]
    return kept


def _parse_view(data: bytes, digest: str, gun: str) -> _View:
    def bad(what: str) -> StorageError:
        return StorageError(
            f"the trust metadata manifest of {gun} is malformed: {what}",
            hint="publish the collection again, or restore the registry's storage",
        )

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise bad("not JSON") from None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list):
        raise bad("no layers")
    if len(layers) > MAX_FILES:
        raise bad(f"more than {MAX_FILES} files")
    files: dict[str, _Blob] = {}
    roots: list[int] = []
    timestamps: list[str] = []
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != TUF_MEDIA_TYPE:
            continue  # not metadata (another tool's layer): never read
        annotations = layer.get("annotations")
        name = annotations.get(FILENAME_ANNOTATION) if isinstance(annotations, dict) else None
        digest_field, size = layer.get("digest"), layer.get("size")
        match = _NAME_RE.match(name) if isinstance(name, str) else None
        if match is None or not isinstance(name, str):
            raise bad(f"a layer's {FILENAME_ANNOTATION} is not a metadata file name")
        if not isinstance(digest_field, str) or not re.fullmatch(
            r"sha256:[0-9a-f]{64}", digest_field
        ):
            raise bad(f"{name} has no sha256 digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"{name} has no size")
        if name in files:
            raise bad(f"{name} is listed twice")
        files[name] = _Blob(digest_field, size)
        if match.group(2) == "root":
            roots.append(int(match.group(1)))
        elif match.group(2) == "timestamp":
            timestamps.append(name)
    if len(timestamps) != 1:
        raise bad(f"{len(timestamps)} timestamps (exactly one is current)")
    root = max(roots, default=0)
    if root == 0:
        raise bad("no root")
    return _View(digest, files, root, timestamps[0])


def _claim_manifest(claim: _Claim) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": CLAIM_ARTIFACT_TYPE,
        "config": _empty_descriptor(),
        "layers": [_empty_descriptor()],
        "annotations": {
            "io.trustkit.tuf.claim.parent": claim.parent,
            "io.trustkit.tuf.claim.next": claim.next,
            "io.trustkit.tuf.claim.nonce": claim.nonce,
            "io.trustkit.tuf.claim.time": repr(claim.time),
        },
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _parse_claim(data: bytes) -> _Claim | None:
    """A claim, or None for anything else (unparsable claims block nobody: a claim is only a
    courtesy between honest writers, never a trust decision)."""
    if len(data) > MAX_CLAIM_BYTES:
        return None
    try:
        annotations = json.loads(data).get("annotations") or {}
        fields = [annotations[f"io.trustkit.tuf.claim.{key}"] for key in _CLAIM_KEYS]
        if not all(isinstance(f, str) for f in fields):
            return None
        return _Claim(fields[0], fields[1], fields[2], float(fields[3]))
    except (ValueError, KeyError, AttributeError, TypeError, RecursionError):
        return None


def _get_tagged(location: RegistryLocation, tag: str, known: str | None = None) -> bytes | None:
    """The manifest ``tag`` names (None when there is none; ``_UNCHANGED`` when it is still
    ``known``, by digest). A registry's filesystem storage may answer 500 while another writer
    moves the same tag: asked again, briefly."""
    for attempt in range(_TAG_READ_ATTEMPTS):
        try:
            if known is not None:
                blob = location.client.get_manifest_if_changed(location.repo_path, tag, known)
                return _UNCHANGED if blob is None else blob.data
            return location.client.get_manifest(location.repo_path, tag).data
        except NotFoundError:
            return None
        except RegistryError as exc:
            if type(exc) is not RegistryError or attempt == _TAG_READ_ATTEMPTS - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def _lost(gun: str, description: str) -> ConflictError:
    return ConflictError(
        f"{gun} changed in {description} while this change was being published "
        "(another writer claimed the same version first)",
        hint="run the command again: it reloads the new trust data and re-applies the change",
    )
