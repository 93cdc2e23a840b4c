"""The registry store: a collection's TUF metadata kept as OCI artifacts in the image's own
repository (ADR 0011), so trust data travels with the image and needs no other server.

Layout, per repository: the tag ``trustkit-tuf`` names the head, one OCI image manifest (OCI
empty config) whose layers are the metadata files a refresh starts from,
``application/vnd.tuf.metadata+json``, each named by a ``tuf.io/filename`` annotation with its
consistent-snapshot name (``3.targets.json``, ``2.targets%2Freleases.json``): every root
version, exactly one timestamp and the newest ``keep`` versions of snapshot, targets and every
delegated role that is not a hashed bin. Hashed bins (hundreds per role) live in bin shards:
shard manifests in the same format, each holding the bins whose suffix hashes to it (so the
bins of one tag in every family share a shard), pinned by digest in the head's
``io.trustkit.tuf.bins`` annotation. A cold client so fetches the small head, then one shard
for the tag it verifies, never a listing of every bin. Moving the head is the commit point;
every file and shard is fetched by digest from the head resolved at the start of a refresh, so
one refresh reads one consistent set, and mirrors may serve them (they are hashed, and TUF
verifies the files). Heads of the first layout (every file a layer of the head) stay readable;
the next publish moves their bins into shards.

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

import base64
import binascii
import builtins
import contextlib
import contextvars
import hashlib
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
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
    TrustkitError,
)
from trustkit.refs import ImageRef, parse
from trustkit.registry.model import OCI_EMPTY_JSON, OCI_MANIFEST, sha256_digest
from trustkit.registry.reserved import TRUST_TAG_PREFIX
from trustkit.stores.interface import (
    BIN_MAX_BYTES,
    MAX_PENDING_LISTED,
    PENDING_ID_RE,
    ROOT_MAX_BYTES,
    SNAPSHOT_MAX_BYTES,
    TARGETS_MAX_BYTES,
    TIMESTAMP_MAX_BYTES,
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
#: a bin shard's tag: readers fetch shards by the digest the head pins; the tag only keeps the
#: current shard (and its bins) from registry garbage collection
SHARD_TAG_PREFIX = f"{TRUST_TAG_PREFIX}-bins-"
BINS_ARTIFACT_TYPE = "application/vnd.trustkit.tuf.bins.v1"
#: the head's annotation pinning the bin shards: {"shards": N, "pins": {"0a": "sha256:..."}}
BINS_ANNOTATION = "io.trustkit.tuf.bins"
#: shards a new collection's bins are spread over: at 2 x 512 bins, ~16 bins (~4 KB) a shard
SHARD_COUNT = 64
MAX_SHARD_COUNT = 256
#: what marks a hashed bin in a file name (``<role>.bin-<hex>``, trustkit.collections.bins)
BIN_INFIX = ".bin-"
EMPTY_CONFIG = b"{}"
EMPTY_DIGEST = sha256_digest(EMPTY_CONFIG)
#: layers one metadata manifest may list (far above a collection with hash-bin delegations)
MAX_FILES = 16_384
#: a claim manifest is a few hundred bytes; anything larger is not one of ours
MAX_CLAIM_BYTES = 64 * 1024
_NAME_RE = re.compile(r"\A([1-9][0-9]{0,17})\.([A-Za-z0-9%._-]{1,400})\.json\Z")
_DIGEST_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
_SHARD_RE = re.compile(r"\A[0-9a-f]{2}\Z")
_CLAIM_KEYS = ("parent", "next", "nonce", "time")
_TAG_READ_ATTEMPTS = 3
#: how long a head ``exists``/``generation`` resolved still starts the refresh that follows
#: (one refresh's first steps; never a stale head for a later, unrelated read)
_FRESH_SECONDS = 2.0
#: verified blob bytes kept per store, by digest (content-addressed, so never stale)
_BLOB_CACHE_BYTES = 32 * 1024 * 1024
#: shard listings kept per store, by digest
_SHARD_CACHE_ENTRIES = 256
#: the largest file a head carries inline (OCI descriptor ``data``): the timestamp, so the
#: read that starts every refresh costs no round trip after the head's
MAX_INLINE_BYTES = 64 * 1024
#: other small top-level files (roots, targets, the roles delegating to bins) a head carries
#: inline too, so a cold client fetches only the snapshot and its bins after the head; within
#: a budget, so the head stays small whatever the history
SMALL_INLINE_BYTES = 8 * 1024
INLINE_BUDGET_BYTES = 64 * 1024
#: parallel fetches of independent blobs over the shared registry client: half its connection
#: cap (8), so other threads' exchanges still find a free connection (writes stay sequential)
_PARALLEL_FETCHES = 4
#: target paths one read-ahead hint is followed for (a lookup names one tag, a digest's few)
_MAX_EXPECTED_TARGETS = 16
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
    """One resolved head: the consistent set a refresh reads. ``files`` are the head's layers
    (every file, in the first layout); bins are in the shards ``shard_pins`` pins by digest."""

    digest: str
    files: dict[str, _Blob]
    root: int
    timestamp: str
    shard_count: int = SHARD_COUNT
    shard_pins: tuple[tuple[str, str], ...] = ()
    #: the files the head carries inline, by name (each already hashed to its digest)
    inline: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def inline_timestamp(self) -> bytes | None:
        """The timestamp's bytes when the head carries them inline."""
        return self.inline.get(self.timestamp)

    def shard_digest(self, shard: str) -> str | None:
        return dict(self.shard_pins).get(shard)

    @property
    def generation(self) -> str:
        """What writers compare: the current timestamp and root. Not the manifest digest, so
        files served beside the set (an attacker's plants, pruning) are no publish."""
        token = f"{self.root}|{self.files[self.timestamp].digest}"
        return "gen-" + sha256_digest(token.encode()).removeprefix("sha256:")[:32]


@dataclass(frozen=True)
class _Plan:
    """What one publish writes: new blobs, blobs already stored, changed shards, the head."""

    blobs: dict[str, bytes]
    known: set[str]
    shards: dict[str, bytes]
    head: bytes


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
        #: collections whose head ``exists``/``generation`` just resolved (until when, by
        #: the monotonic clock): the refresh they start reads its timestamp from that head
        #: instead of asking the registry again
        self._fresh: dict[str, float] = {}
        self._locations: dict[str, RegistryLocation] = {}
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._blob_bytes = 0
        self._shards: OrderedDict[str, dict[str, _Blob]] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        #: background fetches under way (read-ahead), by the digest they fetch: a reader
        #: waits for one instead of fetching the same bytes again
        self._inflight: dict[str, Future[None]] = {}
        #: per collection, the digests its read-ahead is still fetching (shards, their bins)
        self._ahead: dict[str, set[str]] = {}
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
            self._fresh.pop(gun, None)
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

    def _resolve_fresh(self, gun: str) -> _View | None:
        """Resolve, and let the timestamp read that follows (the same refresh) use this head."""
        view = self._resolve(gun)
        with self._lock:
            self._fresh[gun] = time.monotonic() + _FRESH_SECONDS
        return view

    def _resolve_for_refresh(self, gun: str) -> _View | None:
        """The head the current timestamp is read from: the one ``exists``/``generation`` just
        resolved for this refresh, else resolved now."""
        with self._lock:
            # not consumed: every read of the current timestamp in this refresh's window (the
            # session cache's check, then python-tuf's) starts from the head just resolved
            until = self._fresh.get(gun)
            if until is not None and time.monotonic() < until:
                return self._views.get(gun)
        return self._resolve(gun)

    def _view(self, gun: str) -> _View | None:
        """The set resolved at the start of this refresh (``exists``, ``generation`` or the
        current timestamp's read)."""
        with self._lock:
            if gun in self._views:
                return self._views[gun]
        return self._resolve(gun)

    def exists(self, gun: str) -> bool:
        return self._resolve_fresh(gun) is not None

    def generation(self, gun: str) -> str | None:
        view = self._resolve_fresh(gun)
        return None if view is None else view.generation

    def root_version(self, gun: str) -> int:
        view = self._view(gun)
        return 0 if view is None else view.root

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        # the current timestamp starts a refresh: the set it and the files it names (read
        # next, by version) come from
        view = self._resolve_for_refresh(gun) if version is None else self._view(gun)
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
        location = self.location(gun)
        blob = view.files.get(name)
        if blob is None and _is_bin_name(name):
            blob = self._shard_files(gun, location, view, _shard_of(name, view.shard_count)).get(
                name
            )
        if blob is None:
            raise MetadataNotFoundError(f"{name} of {gun} is not in {self.description}")
        if blob.size > limit:
            raise InputTooLargeError(
                f"{role} metadata of {gun} is larger than the {limit}-byte limit"
            )
        if role == "root" and version == 1:
            # only a client with nothing cached starts from root 1: it reads the whole
            # top-level set next, so fetch it at once instead of one round trip per file,
            # beside the read-ahead of the bins it looks up; waiting for both here leaves the
            # fetching threads the interpreter, instead of competing with the verification
            self._prefetch(location, _bootstrap_set(view))
            self._await_ahead(gun)
        elif _is_bin_name(name):
            # a tag's bins in the other families (its signers') are read right after this one
            shard = self._shard_files(gun, location, view, _shard_of(name, view.shard_count))
            self._prefetch(location, [(blob, limit), *_sibling_bins(shard, name)])
        carried = view.inline.get(name)
        if carried is not None:
            return carried
        self._await_inflight(blob.digest)
        cached = self._cached_blob(blob.digest)
        if cached is not None:
            return cached
        try:
            data = location.get_blob(blob.digest, max_size=blob.size)
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
        self._keep_blob(blob.digest, data)
        return data

    def listed_files(self, gun: str) -> dict[str, tuple[str, int]]:
        """Every file of the current set, bins included: name -> (digest, size). Unverified;
        for tools and tests that inspect or copy the stored set."""
        view = self._resolve(gun)
        if view is None:
            return {}
        location = self.location(gun)
        files = dict(view.files)
        for shard, _ in view.shard_pins:
            files.update(self._shard_files(gun, location, view, shard))
        return {name: (blob.digest, blob.size) for name, blob in files.items()}

    def _shard_files(
        self, gun: str, location: RegistryLocation, view: _View, shard: str, *, wait: bool = True
    ) -> dict[str, _Blob]:
        """The bins of one shard of ``view``, fetched by the digest the head pins (after the
        read-ahead fetching it, if one is, unless ``wait`` is False: that read-ahead itself)."""
        digest = view.shard_digest(shard)
        if digest is None:
            return {}
        if wait:
            self._await_inflight(digest)
        with self._lock:
            known = self._shards.get(digest)
            if known is not None:
                self._shards.move_to_end(digest)
                return known
        try:
            data = location.get_manifest(digest, expected_digest=digest).data
        except (DigestMismatchError, InputTooLargeError) as exc:
            raise TamperedMetadataError(
                f"bin shard {shard} of {gun} does not match its hash or length in the "
                f"metadata manifest ({exc.one_line()})"
            ) from None
        except NotFoundError:
            raise StorageError(
                f"bin shard {shard} of {gun} is missing from {location.describe()} "
                "(pinned by the metadata manifest, but the registry cannot fetch it)",
                hint="publish the collection again, or restore the registry's storage",
            ) from None
        files = _parse_shard(data, gun, shard, view.shard_count)
        with self._lock:
            self._shards[digest] = files
            while len(self._shards) > _SHARD_CACHE_ENTRIES:
                self._shards.popitem(last=False)
        return files

    # --- the blob cache and parallel fetches -------------------------------------------------
    def _cached_blob(self, digest: str) -> bytes | None:
        with self._lock:
            data = self._blobs.get(digest)
            if data is not None:
                self._blobs.move_to_end(digest)
            return data

    def _keep_blob(self, digest: str, data: bytes) -> None:
        """Keep bytes already hashed to ``digest`` (content-addressed: never stale)."""
        with self._lock:
            if digest in self._blobs or len(data) > _BLOB_CACHE_BYTES // 4:
                return
            self._blobs[digest] = data
            self._blob_bytes += len(data)
            while self._blob_bytes > _BLOB_CACHE_BYTES:
                _, dropped = self._blobs.popitem(last=False)
                self._blob_bytes -= len(dropped)

    def _map(self, work: Callable[[Any], object], items: Sequence[Any]) -> None:
        """``work`` on every item, in parallel (at most ``_PARALLEL_FETCHES`` at once) over
        the shared registry clients."""
        if len(items) <= 1:
            for item in items:
                work(item)
            return
        executor = self._pool()
        # each fetch runs in the caller's context: its registry deadline (the webhook's) holds
        futures = [executor.submit(contextvars.copy_context().run, work, item) for item in items]
        for future in futures:
            future.result()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    _PARALLEL_FETCHES, thread_name_prefix="trustkit-oci"
                )
            return self._executor

    def _await_inflight(self, digest: str) -> None:
        """Wait for the background fetch of ``digest``, if one is under way (its bytes are
        then cached; its failure is the reader's to meet again, with the reader's error)."""
        with self._lock:
            future = self._inflight.get(digest)
        if future is not None:
            with contextlib.suppress(Exception):
                future.result()

    def _in_background(self, digest: str, work: Callable[[], None], gun: str) -> None:
        """Run ``work`` (the fetch of ``digest``, read ahead for ``gun``) on the pool without
        waiting for it; readers of ``digest`` wait for it instead of fetching twice. Pool
        threads never wait for one another, so the pool cannot deadlock on its own waits."""
        pool = self._pool()
        with self._lock:
            if digest in self._inflight or digest in self._blobs or digest in self._shards:
                return
            future: Future[None] = pool.submit(contextvars.copy_context().run, work)
            self._inflight[digest] = future
            self._ahead.setdefault(gun, set()).add(digest)

        future.add_done_callback(lambda _: self._settled(gun, digest, future))

    def _settled(self, gun: str, digest: str, future: Future[None]) -> None:
        """A background fetch of ``digest`` is over: readers fetch it themselves from now on
        (when it failed, its bytes are not cached)."""
        with self._lock:
            if self._inflight.get(digest) is future:
                del self._inflight[digest]
            ahead = self._ahead.get(gun)
            if ahead is not None:
                ahead.discard(digest)
                if not ahead:
                    del self._ahead[gun]

    def _prefetch(self, location: RegistryLocation, wanted: Iterable[tuple[_Blob, int]]) -> None:
        """Fetch blobs a reader is about to ask for, in parallel, each within its role's bound.
        Best effort: a blob that fails here is fetched again, and its error reported, when it
        is read."""
        todo = list(
            {
                blob.digest: blob
                for blob, bound in wanted
                # within the role's bound, and small enough for the cache to keep
                if blob.size <= min(bound, _BLOB_CACHE_BYTES // 4)
                and self._cached_blob(blob.digest) is None
                and blob.digest not in self._inflight
            }.values()
        )
        budget = _BLOB_CACHE_BYTES // 2
        todo = [b for b in todo if (budget := budget - b.size) >= 0]

        def fetch(blob: _Blob) -> None:
            with contextlib.suppress(TrustkitError):
                self._keep_blob(blob.digest, location.get_blob(blob.digest, max_size=blob.size))

        self._map(fetch, todo)

    # --- reading ahead ----------------------------------------------------------------------
    def expect_targets(self, gun: str, targets: Sequence[str]) -> None:
        """Start fetching, in the background, the bins a lookup of ``targets`` reads in every
        family (releases and each signer's): their shard, then the newest version of each. A
        cold client so receives them while python-tuf verifies root, timestamp, snapshot and
        targets, not one round trip after another once it asks. Which bins comes from the
        unverified ``succinct_roles`` of the roles the head carries inline: a wrong guess
        costs a fetch, never trust (every file is verified when the client reads it)."""
        with self._lock:
            view = self._views.get(gun)
        if view is None:
            return
        suffixes = _bin_suffixes(view, targets[:_MAX_EXPECTED_TARGETS])
        if not suffixes:
            return
        location = self.location(gun)
        for suffix in sorted(suffixes):
            shard = _shard_of_suffix(suffix, view.shard_count)
            digest = view.shard_digest(shard)
            if digest is None:  # the first layout: the bins are the head's own layers
                self._fetch_bins(gun, location, view.files, suffix)
                continue

            def read_ahead(shard: str = shard, suffix: str = suffix) -> None:
                with contextlib.suppress(TrustkitError):
                    files = self._shard_files(gun, location, view, shard, wait=False)
                    self._fetch_bins(gun, location, files, suffix)

            self._in_background(digest, read_ahead, gun)

    def _await_ahead(self, gun: str) -> None:
        """Wait for ``gun``'s read-ahead still under way: its shards, then the bins they
        named (a shard's fetch registers its bins before it completes)."""
        for _ in range(3):
            with self._lock:
                digests = sorted(self._ahead.get(gun, ()))
            if not digests:
                return
            for digest in digests:
                self._await_inflight(digest)

    def _fetch_bins(
        self, gun: str, location: RegistryLocation, files: dict[str, _Blob], suffix: str
    ) -> None:
        """Fetch in the background the newest version of each bin ending in ``suffix``."""
        for role, (_, name) in _newest(files).items():
            if not role.endswith(BIN_INFIX + suffix):
                continue
            blob = files[name]
            if blob.size > min(_role_bound(role), _BLOB_CACHE_BYTES // 4):
                continue  # too large to keep: the reader fetches it (and refuses it) itself

            def fetch(blob: _Blob = blob) -> None:
                with contextlib.suppress(TrustkitError):
                    self._keep_blob(blob.digest, location.get_blob(blob.digest, max_size=blob.size))

            self._in_background(blob.digest, fetch, gun)

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
        plan = self._prepare(gun, location, head, files)
        new_digest = sha256_digest(plan.head)
        # everything the new head names exists before the head moves: a writer killed at any
        # step leaves the previous set whole (shards are untagged until the head commits)
        self._upload(location, plan.blobs, plan.known)
        for shard in plan.shards.values():
            location.put_manifest(None, shard, OCI_MANIFEST)
        mine = self._claim(gun, location, parent or "none", new_digest)
        location.put_manifest(HEAD_TAG, plan.head, OCI_MANIFEST)
        landed = self._resolve(gun)
        if landed is None or landed.digest != new_digest:
            raise _lost(gun, self.description)
        self._tag_shards(gun, location, plan.shards)
        self._release(location, mine)
        for digest, data in plan.blobs.items():
            self._keep_blob(digest, data)  # this writer's own bytes: its next read needs them
        return landed.generation

    def _prepare(
        self,
        gun: str,
        location: RegistryLocation,
        head: _View | None,
        files: Sequence[MetadataFile],
    ) -> _Plan:
        """The new set: the head's files plus ``files``, one timestamp, old versions pruned;
        bins in their shards (a head of the first layout has its bins moved there)."""
        count = head.shard_count if head is not None and head.shard_pins else SHARD_COUNT
        top: dict[str, _Blob] = {}
        shards: dict[str, dict[str, _Blob]] = {}
        changed: set[str] = set()
        stored = {b.digest for b in head.files.values()} if head is not None else set()

        def shard_of(name: str) -> dict[str, _Blob]:
            shard = _shard_of(name, count)
            if shard not in shards:
                pinned = {} if head is None else self._shard_files(gun, location, head, shard)
                stored.update(b.digest for b in pinned.values())
                shards[shard] = dict(pinned)
            changed.add(shard)
            return shards[shard]

        for name, blob in (head.files if head is not None else {}).items():
            (shard_of(name) if _is_bin_name(name) else top)[name] = blob
        blobs: dict[str, bytes] = {}
        for item in files:
            name = metadata_filename(item.role, item.version)
            digest = sha256_digest(item.data)
            blobs[digest] = item.data
            (shard_of(name) if _is_bin_name(name) else top)[name] = _Blob(digest, len(item.data))
        timestamp = next(
            (metadata_filename("timestamp", f.version) for f in files if f.role == "timestamp"),
            head.timestamp if head is not None else None,
        )
        kept = _pruned(top, timestamp, self.options.keep)
        pins = dict(head.shard_pins) if head is not None else {}
        manifests: dict[str, bytes] = {}
        bins_of = {shard: _pruned(shards[shard], None, self.options.keep) for shard in changed}
        for listing in (kept, *bins_of.values()):
            if len(listing) > MAX_FILES:
                raise StorageError(f"{gun} would list more than {MAX_FILES} files in one manifest")
        for shard, bins in sorted(bins_of.items()):
            manifests[shard] = _manifest(gun, bins, artifact_type=BINS_ARTIFACT_TYPE, shard=shard)
            pins[shard] = sha256_digest(manifests[shard])
        new_bytes = {metadata_filename(f.role, f.version): f.data for f in files}
        carried = dict(head.inline) if head is not None else {}
        head_manifest = _manifest(
            gun, kept, shards=(count, pins), inline=_inlined(kept, {**carried, **new_bytes})
        )
        return _Plan(blobs, stored, manifests, head_manifest)

    def _upload(self, location: RegistryLocation, blobs: dict[str, bytes], known: set[str]) -> None:
        _ensure_empty_config(location)
        for digest, data in blobs.items():
            if digest not in known:
                location.client.upload_blob(location.repo_path, data, digest)

    def _tag_shards(self, gun: str, location: RegistryLocation, shards: dict[str, bytes]) -> None:
        """Tag the shards the new head pins, so registry garbage collection keeps them and
        their bins. Best effort: the set is published and readable either way; a shard left
        untagged is tagged again by the next publish that changes it."""

        def tag(item: tuple[str, bytes]) -> None:
            with contextlib.suppress(RegistryError):
                location.put_manifest(SHARD_TAG_PREFIX + item[0], item[1], OCI_MANIFEST)

        for item in sorted(shards.items()):
            tag(item)
        # a writer that stalled here may just have moved a tag back from a shard a newer head
        # pins (that head's writer tagged it first): tag what the current head pins again
        with contextlib.suppress(TrustkitError):
            head = self._resolve(gun)
            if head is None:
                return
            moved = {
                shard: digest
                for shard, digest in head.shard_pins
                if shard in shards and digest != sha256_digest(shards[shard])
            }
            for shard, digest in sorted(moved.items()):
                tag((shard, location.get_manifest(digest, expected_digest=digest).data))

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

    def expect_targets(self, gun: str, targets: Sequence[str]) -> None:
        self.store_for(gun).expect_targets(gun, targets)

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


def _manifest(
    gun: str,
    files: dict[str, _Blob],
    *,
    artifact_type: str = ARTIFACT_TYPE,
    shard: str | None = None,
    shards: tuple[int, dict[str, str]] | None = None,
    inline: dict[str, bytes] | None = None,
) -> bytes:
    """A head (``shards``: its shard count and pins) or a bin shard (``shard``) listing
    ``files`` as layers. A head without pinned shards is the first layout's head. ``inline``
    files are also embedded in their descriptors (OCI ``data``)."""
    layers: list[dict[str, Any]] = []
    for name, blob in sorted(files.items(), key=lambda item: _sort_key(item[0])):
        layer: dict[str, Any] = {
            "mediaType": TUF_MEDIA_TYPE,
            "digest": blob.digest,
            "size": blob.size,
            "annotations": {FILENAME_ANNOTATION: name},
        }
        data = (inline or {}).get(name)
        if data is not None and sha256_digest(data) == blob.digest:
            layer["data"] = base64.b64encode(data).decode()
        layers.append(layer)
    annotations = {"io.trustkit.tuf.collection": gun}
    if shard is not None:
        annotations["io.trustkit.tuf.shard"] = shard
    if shards is not None and shards[1]:
        count, pins = shards
        annotations[BINS_ANNOTATION] = json.dumps(
            {"shards": count, "pins": dict(sorted(pins.items()))}, separators=(",", ":")
        )
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _empty_descriptor(),
        "layers": layers,
        "annotations": annotations,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _sort_key(name: str) -> tuple[str, int]:
    match = _NAME_RE.match(name)
    assert match is not None
    return match.group(2), int(match.group(1))


def _is_bin_name(name: str) -> bool:
    """Whether a consistent-snapshot file name is a hashed bin's (``1.targets%2Fa.bin-0f.json``)."""
    match = _NAME_RE.match(name)
    return match is not None and BIN_INFIX in match.group(2)


def _shard_of(name: str, count: int) -> str:
    """The shard of a bin file: by its suffix alone, so a tag's bin in every family (releases
    and each signer hash a tag to the same suffix) lands in the same shard."""
    match = _NAME_RE.match(name)
    assert match is not None
    return _shard_of_suffix(match.group(2).rsplit(BIN_INFIX, 1)[1], count)


def _shard_of_suffix(suffix: str, count: int) -> str:
    return f"{hashlib.sha256(suffix.encode()).digest()[0] % count:02x}"


def _bin_suffixes(view: _View, targets: Sequence[str]) -> set[str]:
    """The bin suffixes (``0f3``) ``targets`` hash to under the ``succinct_roles`` of the
    roles the head carries inline (TAP 15: the top ``bit_length`` bits of the path's SHA-256,
    in hex of the width of the largest bin). Unverified, for read-ahead only; malformed
    metadata simply yields nothing."""
    bit_lengths: set[int] = set()
    for role, (_, name) in _newest(view.files).items():
        data = view.inline.get(name)
        if data is None or role in ("root", "timestamp", "snapshot"):
            continue
        try:
            doc = json.loads(data)
            succinct = doc["signed"]["delegations"]["succinct_roles"]
            bits = succinct["bit_length"]
        except (ValueError, RecursionError, KeyError, TypeError):
            continue
        if isinstance(bits, int) and not isinstance(bits, bool) and 1 <= bits <= 32:
            bit_lengths.add(bits)
    suffixes: set[str] = set()
    for bits in sorted(bit_lengths)[:2]:  # one binned layout, or one changing bit length
        width = len(f"{2**bits - 1:x}")
        for target in targets:
            top = int.from_bytes(hashlib.sha256(target.encode()).digest()[:4], "big")
            suffixes.add(f"{top >> (32 - bits):0{width}x}")
    return suffixes


def _role_bound(role: str) -> int:
    if BIN_INFIX in role:
        return BIN_MAX_BYTES
    bounds = {
        "root": ROOT_MAX_BYTES,
        "timestamp": TIMESTAMP_MAX_BYTES,
        "snapshot": SNAPSHOT_MAX_BYTES,
    }
    return bounds.get(role, TARGETS_MAX_BYTES)


def _newest(files: dict[str, _Blob]) -> dict[str, tuple[int, str]]:
    """Each role's newest version in ``files``: role -> (version, file name)."""
    newest: dict[str, tuple[int, str]] = {}
    for name in files:
        match = _NAME_RE.match(name)
        assert match is not None
        role, version = match.group(2), int(match.group(1))
        if role not in newest or version > newest[role][0]:
            newest[role] = (version, name)
    return newest


def _bootstrap_set(view: _View) -> list[tuple[_Blob, int]]:
    """What a client with nothing cached reads after root 1: every root, the timestamp and the
    newest version of every other top-level file (never a bin)."""
    wanted: list[tuple[_Blob, int]] = []
    for name, blob in view.files.items():
        match = _NAME_RE.match(name)
        assert match is not None
        if match.group(2) == "root" and name not in view.inline:
            wanted.append((blob, _role_bound("root")))
    for role, (_, name) in _newest(view.files).items():
        if name in view.inline:
            continue  # the head carries it
        if role != "root" and BIN_INFIX not in role:
            wanted.append((view.files[name], _role_bound(role)))
    return wanted


def _sibling_bins(shard: dict[str, _Blob], name: str) -> list[tuple[_Blob, int]]:
    """The newest version of the bins with ``name``'s suffix in every other family."""
    match = _NAME_RE.match(name)
    assert match is not None
    suffix = BIN_INFIX + match.group(2).rsplit(BIN_INFIX, 1)[1]
    return [
        (shard[other], _role_bound(role))
        for role, (_, other) in _newest(shard).items()
        if role.endswith(suffix) and role != match.group(2)
    ]


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


def _malformed(what: str, gun: str, problem: str) -> StorageError:
    return StorageError(
        f"the {what} of {gun} is malformed: {problem}",
        hint="publish the collection again, or restore the registry's storage",
    )


def _parse_layers(data: bytes, gun: str, what: str) -> tuple[dict[str, Any], dict[str, _Blob]]:
    """A metadata manifest's document and its metadata files (bounded; untrusted)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise _malformed(what, gun, "not JSON") from None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list):
        raise _malformed(what, gun, "no layers")
    if len(layers) > MAX_FILES:
        raise _malformed(what, gun, f"more than {MAX_FILES} files")
    files: dict[str, _Blob] = {}
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != TUF_MEDIA_TYPE:
            continue  # not metadata (another tool's layer): never read
        annotations = layer.get("annotations")
        name = annotations.get(FILENAME_ANNOTATION) if isinstance(annotations, dict) else None
        digest_field, size = layer.get("digest"), layer.get("size")
        if not isinstance(name, str) or _NAME_RE.match(name) is None:
            raise _malformed(what, gun, f"a layer's {FILENAME_ANNOTATION} is not a file name")
        if not isinstance(digest_field, str) or not _DIGEST_RE.match(digest_field):
            raise _malformed(what, gun, f"{name} has no sha256 digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _malformed(what, gun, f"{name} has no size")
        if name in files:
            raise _malformed(what, gun, f"{name} is listed twice")
        files[name] = _Blob(digest_field, size)
    assert isinstance(doc, dict)
    return doc, files


def _parse_view(data: bytes, digest: str, gun: str) -> _View:
    what = "trust metadata manifest"
    doc, files = _parse_layers(data, gun, what)
    named = {name: _NAME_RE.match(name) for name in files}
    roots = [int(m.group(1)) for m in named.values() if m is not None and m.group(2) == "root"]
    timestamps = [n for n, m in named.items() if m is not None and m.group(2) == "timestamp"]
    if len(timestamps) != 1:
        raise _malformed(what, gun, f"{len(timestamps)} timestamps (exactly one is current)")
    root = max(roots, default=0)
    if root == 0:
        raise _malformed(what, gun, "no root")
    count, pins = _parse_pins(doc, gun)
    return _View(digest, files, root, timestamps[0], count, pins, _inline_data(doc, files))


def _inline_data(doc: dict[str, Any], files: dict[str, _Blob]) -> dict[str, bytes]:
    """The files the head embeds (OCI descriptor ``data``), each only when its bytes are
    exactly its listed blob; any other is fetched by digest, as from a head embedding nothing."""
    found: dict[str, bytes] = {}
    for layer in doc["layers"]:
        if not isinstance(layer, dict) or "data" not in layer:
            continue
        annotations = layer.get("annotations")
        name = annotations.get(FILENAME_ANNOTATION) if isinstance(annotations, dict) else None
        if not isinstance(name, str):
            continue
        blob = files.get(name)
        if blob is None or blob.size > MAX_INLINE_BYTES or layer.get("digest") != blob.digest:
            continue
        encoded = layer.get("data")
        if not isinstance(encoded, str) or len(encoded) > 2 * MAX_INLINE_BYTES:
            continue
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(data) == blob.size and sha256_digest(data) == blob.digest:
            found[name] = data
    return found


def _inlined(kept: dict[str, _Blob], known: Mapping[str, bytes]) -> dict[str, bytes]:
    """What a new head embeds: the current timestamp, then the newest small top-level files a
    cold client reads next (every root, targets, the roles delegating to bins), within
    ``INLINE_BUDGET_BYTES``; only bytes this writer holds and that hash to the listed blob."""
    newest = {name for _, name in _newest(kept).values()}
    chosen: dict[str, bytes] = {}
    budget = INLINE_BUDGET_BYTES
    for name in sorted(kept, key=_sort_key):
        data = known.get(name)
        match = _NAME_RE.match(name)
        if data is None or match is None or sha256_digest(data) != kept[name].digest:
            continue
        role = match.group(2)
        if role == "timestamp":
            if name in newest and len(data) <= MAX_INLINE_BYTES:
                chosen[name] = data
            continue
        if role == "snapshot" or len(data) > SMALL_INLINE_BYTES:
            continue
        if role != "root" and name not in newest:
            continue
        if len(data) <= budget:
            chosen[name] = data
            budget -= len(data)
    return chosen


def _parse_pins(doc: dict[str, Any], gun: str) -> tuple[int, tuple[tuple[str, str], ...]]:
    """The head's bin shards: (shard count, ((shard, manifest digest), ...))."""
    annotations = doc.get("annotations")
    raw = annotations.get(BINS_ANNOTATION) if isinstance(annotations, dict) else None
    if raw is None:
        return SHARD_COUNT, ()  # the first layout: every bin is a layer of the head
    what = "trust metadata manifest"
    try:
        pinned = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        pinned = None
    count = pinned.get("shards") if isinstance(pinned, dict) else None
    pins = pinned.get("pins") if isinstance(pinned, dict) else None
    if (
        not isinstance(count, int)
        or isinstance(count, bool)
        or not 1 <= count <= MAX_SHARD_COUNT
        or not isinstance(pins, dict)
    ):
        raise _malformed(what, gun, f"{BINS_ANNOTATION} does not pin bin shards")
    for shard, digest in pins.items():
        if not _SHARD_RE.match(shard) or int(shard, 16) >= count:
            raise _malformed(what, gun, f"{shard!r} is not a bin shard")
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise _malformed(what, gun, f"bin shard {shard} has no sha256 digest")
    return count, tuple(sorted(pins.items()))


def _parse_shard(data: bytes, gun: str, shard: str, count: int) -> dict[str, _Blob]:
    """One shard's bins; a shard listing anything but its own bins is malformed (its writer's
    head pinned it, so this is no honest publish)."""
    what = f"bin shard {shard}"
    _, files = _parse_layers(data, gun, what)
    for name in files:
        if not _is_bin_name(name) or _shard_of(name, count) != shard:
            raise _malformed(what, gun, f"{name} does not belong in it")
    return files


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
