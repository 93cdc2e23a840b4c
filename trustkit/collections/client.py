"""Verification: python-tuf's ngclient over a store, with trustkit's errors and DCT semantics.

The Updater reads through ``StoreFetcher`` (bounded reads, no network of its own) and keeps the
trusted metadata of each collection in ``settings.client_cache_dir/<escaped GUN>/``. The first
contact trusts the store's ``1.root.json`` (TOFU, as Notary does) unless a root file is given,
then walks the root chain. Which roles hold a tag, and in what order they are consulted, is the
collection's delegation layout's decision (``layouts.py``).

This is the only module that touches ngclient internals (``_trusted_set``, ``_load_targets``):
``_Ngclient`` wraps them, so a python-tuf upgrade has one place to look.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tuf.api import exceptions as tuf_exc
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from trustkit._fs import ensure_private_dir, read_bounded
from trustkit.collections._canonical import reused_encodings
from trustkit.collections._tuf import Delegations, Metadata, Root, Signed, Targets
from trustkit.collections.bins import BIN_INFIX, is_bin
from trustkit.collections.expiry import renew_hint, warn_if_expiring
from trustkit.collections.forks import check_for_fork
from trustkit.collections.layouts import DelegationLayout, layout_for
from trustkit.collections.model import (
    BIN_MAX_BYTES,
    MAX_DELEGATIONS,
    MAX_ROOT_ROTATIONS,
    ROOT,
    ROOT_MAX_BYTES,
    SNAPSHOT,
    SNAPSHOT_MAX_BYTES,
    TARGETS,
    TARGETS_MAX_BYTES,
    TIMESTAMP,
    TIMESTAMP_MAX_BYTES,
    TrustedTarget,
)
from trustkit.config import Settings
from trustkit.errors import (
    BadInputError,
    BelowThresholdError,
    ExpiredMetadataError,
    InputTooLargeError,
    NotSignedError,
    RollbackError,
    SignatureError,
    StorageError,
    TamperedMetadataError,
    TrustkitError,
    UnknownRepositoryError,
    UntrustedError,
)
from trustkit.stores.interface import MetadataNotFoundError, MetadataReader, escape_gun

if TYPE_CHECKING:
    from trustkit.model import SignerIdentity
    from trustkit.services import Services

BASE_URL = "trustkit-store:///"
_NO_DATA_HINT = "sign a tag or add a signer first"
_VERSIONED_NAME = re.compile(r"\A([0-9]{1,12})\.(.+)\.json\Z")
_UPDATER_CONFIG = UpdaterConfig(
    max_root_rotations=MAX_ROOT_ROTATIONS,
    max_delegations=MAX_DELEGATIONS,
    root_max_length=ROOT_MAX_BYTES,
    timestamp_max_length=TIMESTAMP_MAX_BYTES,
    snapshot_max_length=SNAPSHOT_MAX_BYTES,
    targets_max_length=TARGETS_MAX_BYTES,
)


#: the bounds of files no signed metadata gives a length for (python-tuf passes the recorded
#: length as the limit of every other file)
_UNPINNED_LIMITS = {
    ROOT: ROOT_MAX_BYTES,
    TIMESTAMP: TIMESTAMP_MAX_BYTES,
    SNAPSHOT: SNAPSHOT_MAX_BYTES,
}


class StoreFetcher(FetcherInterface):
    """Serves the Updater's metadata URLs from a store, never more than asked for.

    It also remembers which role it fetched last and the bytes it served: ngclient does not
    say which role failed to verify, but the refresh step that was running does."""

    def __init__(self, store: MetadataReader, gun: str) -> None:
        self._store = store
        self._gun = gun
        self.step: str | None = None
        self.served: bytes | None = None
        self.timestamp_served: bytes | None = None  # for fork detection

    def _fetch(self, url: str) -> Iterator[bytes]:
        yield self.download_bytes(url, TARGETS_MAX_BYTES)

    def download_bytes(self, url: str, max_length: int) -> bytes:
        role, version = _parse_url(url)
        self.step, self.served = role, None
        if is_bin(role):  # pinned by version only: bounded by what a bin may weigh
            max_length = min(max_length, BIN_MAX_BYTES)
        try:
            data = self._store.read(self._gun, role, version, limit=max_length)
        except MetadataNotFoundError as exc:
            raise tuf_exc.DownloadHTTPError(str(exc), 404) from None
        except InputTooLargeError:
            unpinned = BIN_MAX_BYTES if is_bin(role) else TARGETS_MAX_BYTES
            if max_length < _UNPINNED_LIMITS.get(role, unpinned):
                # the limit is the length signed metadata records: another file than signed
                raise tuf_exc.LengthOrHashMismatchError(
                    f"{role} metadata is longer than the {max_length} bytes recorded for it"
                ) from None
            raise tuf_exc.DownloadLengthMismatchError(
                f"{role} metadata is larger than the {max_length}-byte limit"
            ) from None
        self.served = data
        if role == TIMESTAMP:
            self.timestamp_served = data
        return data


def _parse_url(url: str) -> tuple[str, int | None]:
    if not url.startswith(BASE_URL):
        raise tuf_exc.DownloadError(f"unexpected metadata URL {url}")
    name = url[len(BASE_URL) :]
    match = _VERSIONED_NAME.match(name)
    if match:
        return unquote(match.group(2)), int(match.group(1))
    if not name.endswith(".json"):
        raise tuf_exc.DownloadError(f"unexpected metadata URL {url}")
    return unquote(name[: -len(".json")]), None


def cache_dir_for(settings: Settings, gun: str) -> Path:
    return settings.client_cache_dir / escape_gun(gun)


class _Ngclient:
    """Every use of ngclient's internals, in one place.

    ngclient has no public "load this delegated role" call: ``_load_targets`` verifies a role
    against its delegator, the snapshot and the cache, which is exactly the DCT walk (releases
    first, then targets) that ``Updater.get_targetinfo``'s targets-first walk is not.
    """

    def __init__(self, updater: Updater) -> None:
        self._updater = updater

    def load_targets(self, role: str, delegator: str) -> Targets:
        return self._updater._load_targets(role, delegator)

    def trusted(self, role: str) -> Signed | None:
        try:
            return self._updater._trusted_set[role]
        except KeyError:
            return None

    def all_trusted(self) -> list[Signed]:
        return list(self._updater._trusted_set)

    @property
    def reference_time(self) -> datetime:
        return self._updater._trusted_set.reference_time

    @property
    def root(self) -> Root:
        return self._updater._trusted_set.root

    def in_snapshot(self, role: str) -> bool:
        return f"{role}.json" in self._updater._trusted_set.snapshot.meta

    def snapshot_version(self, role: str) -> int | None:
        meta = self._updater._trusted_set.snapshot.meta.get(f"{role}.json")
        return None if meta is None else int(meta.version)


@dataclass(frozen=True)
class TrustedState:
    """What a verified session trusts, as far as a later process needs it to know that nothing
    changed (``warm.py``, ADR 0017)."""

    timestamp_sha256: str
    root_version: int
    #: the top-level roles' expiry (a refresh's expiry warning is computed from these)
    top_level_expiry: dict[str, datetime]
    #: the earliest expiry of everything the session trusts (every role read for its answers)
    earliest_expiry: datetime


class TrustSession:
    """One refreshed, verified view of a collection."""

    def __init__(
        self,
        settings: Settings | Services,
        store: MetadataReader,
        gun: str,
        *,
        root_file: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        known_to_exist: bool = False,
    ) -> None:
        if not isinstance(settings, Settings):
            clock = clock or settings.clock
            settings = settings.settings
        self.gun = gun
        self._store = store
        self._clock = clock or _utcnow
        self._vouching: dict[str, tuple[str, ...]] = {}
        self._lock = threading.RLock()
        # (session_for has just asked: asking again would cost a registry round trip)
        if not known_to_exist and not store.exists(gun):
            raise UnknownRepositoryError(f"no trust data for {gun}", hint=_NO_DATA_HINT)
        cache = ensure_private_dir(cache_dir_for(settings, gun))
        bootstrap: bytes | None
        if root_file is not None:
            try:
                bootstrap = read_bounded(root_file, ROOT_MAX_BYTES, what="root file")
            except FileNotFoundError:
                raise BadInputError(f"root file {root_file} does not exist") from None
            _check_root_file(root_file, bootstrap)
        elif (cache / "root.json").exists():
            bootstrap = None  # the cached, already trusted root
        else:
            with _mapped_errors(gun, step=ROOT):
                bootstrap = store.read(gun, ROOT, 1, limit=ROOT_MAX_BYTES)
        self._fetcher = StoreFetcher(store, gun)
        with _mapped_errors(gun, step=ROOT), reused_encodings():
            updater = Updater(
                str(cache),
                BASE_URL,
                fetcher=self._fetcher,
                config=_UPDATER_CONFIG,
                bootstrap=bootstrap,
            )
        self._ng = _Ngclient(updater)
        with self._mapped(ROOT), reused_encodings():
            updater.refresh()
        check_for_fork(
            gun,
            self._ng.root,
            self._ng.trusted(TIMESTAMP),
            self._ng.trusted(SNAPSHOT),
            self._fetcher.timestamp_served,
            cache,
        )
        targets = self.role(TARGETS)
        assert targets is not None
        self.layout: DelegationLayout = layout_for(targets.delegations)
        # verified and about to expire: say so once per refresh, while there is time to renew
        with self._lock:
            trusted = {signed.type: signed.expires for signed in self._ng.all_trusted()}
        warn_if_expiring(gun, trusted, self._clock())

    def _mapped(self, step: str) -> contextlib.AbstractContextManager[None]:
        self._fetcher.step = None  # what this step fetches, if anything, names the failed role
        return _mapped_errors(self.gun, step=step, fetcher=self._fetcher, ng=self._ng)

    def role(self, name: str) -> Targets | None:
        """A verified targets role, or None when it was delegated but never signed.

        Serialised per session: a cached session is shared by threads (the webhook), and
        ngclient's trusted set, like the refresh step being tracked, is not thread-safe."""
        with self._lock, self._mapped(name), reused_encodings():
            if name == TARGETS:
                return self._ng.load_targets(TARGETS, ROOT)
            if not self._ng.in_snapshot(name):
                return None
            delegator = self.layout.delegator_of(name)
            if delegator not in (ROOT, TARGETS) and self.role(delegator) is None:
                return None  # a bin whose delegating role was never published
            return self._ng.load_targets(name, delegator)

    def any_expired(self) -> bool:
        """Whether anything this session trusts has expired since it was verified."""
        now = self._clock()
        with self._lock:
            return any(signed.is_expired(now) for signed in self._ng.all_trusted())

    @property
    def root(self) -> Root:
        return self._ng.root

    @property
    def delegations(self) -> Delegations | None:
        targets = self.role(TARGETS)
        assert targets is not None
        return targets.delegations

    def find(self, tag: str) -> TrustedTarget:
        """The tag as the layout trusts it (DCT: from targets/releases when delegated, else
        targets)."""
        for role_name in self.layout.lookup_roles(self.delegations, tag):
            role = self.role(role_name)
            if role is not None and tag in role.targets:
                return self._trusted(role_name, tag, role)
        raise NotSignedError(f"tag {tag} of {self.gun} is not signed")

    def signed_tags(self) -> list[TrustedTarget]:
        found: dict[str, TrustedTarget] = {}
        for role_name in self.layout.listing_roles(self.delegations):
            role = self.role(role_name)
            if role is None:
                continue
            for tag in role.targets:
                if tag not in found:
                    found[tag] = self._trusted(role_name, tag, role)
        return [found[t] for t in sorted(found)]

    def tags_at(self, digest: str) -> list[TrustedTarget]:
        """Every trusted tag whose digest is ``digest`` (signers are looked up for those
        only, not for every tag of a large collection)."""
        hex_digest = digest.split(":", 1)[-1]
        seen: set[str] = set()
        found: list[TrustedTarget] = []
        for role_name in self.layout.listing_roles(self.delegations):
            role = self.role(role_name)
            if role is None:
                continue
            for tag, entry in role.targets.items():
                if tag in seen:
                    continue  # a more trusted role already decided this tag
                seen.add(tag)
                if entry.hashes.get("sha256") == hex_digest:
                    found.append(self._trusted(role_name, tag, role))
        return sorted(found, key=lambda t: t.tag)

    def _trusted(self, role_name: str, tag: str, role: Targets) -> TrustedTarget:
        target = role.targets[tag]
        sha256 = target.hashes.get("sha256")
        if sha256 is None:
            raise UntrustedError(f"tag {tag} of {self.gun} has no sha256 digest")
        signers = [name for name, _ in self._recorders(tag, target.hashes, target.length)]
        return TrustedTarget(
            gun=self.gun,
            tag=tag,
            digest=f"sha256:{sha256}",
            size=target.length,
            role=role_name,
            signers=tuple(signers),
        )

    def _recorders(self, tag: str, hashes: dict[str, str], length: int) -> list[tuple[str, str]]:
        """(signer name, role) of every named signer whose own role records ``tag`` exactly."""
        found = []
        for name, signer_role in self.layout.record_roles(self.delegations, tag).items():
            try:
                theirs = self.role(signer_role)
            except UntrustedError:
                continue  # one signer's broken metadata does not decide the tag
            if theirs is not None and tag in theirs.targets:
                other = theirs.targets[tag]
                if other.hashes == hashes and other.length == length:
                    found.append((name, signer_role))
        return found

    # --- typed evidence --------------------------------------------------------------------
    def signer_identities(self, target: TrustedTarget) -> list[SignerIdentity]:
        """The named signers who vouched for ``target``, each with the distinct key ids whose
        valid signatures on its own role count (a key listed twice counts once per role)."""
        from trustkit.model import SignerIdentity

        trusted_role = self.role(target.role)
        assert trusted_role is not None
        entry = trusted_role.targets[target.tag]
        return [
            SignerIdentity(name=name, keyids=self.vouching_keyids(role), role=role)
            for name, role in self._recorders(target.tag, entry.hashes, entry.length)
        ]

    def vouching_keyids(self, role: str) -> tuple[str, ...]:
        """The keys whose signatures on the trusted version of delegated ``role`` verify.

        ngclient keeps only the signed part of what it verified, so the signatures are read
        again from the store and accepted only when their signed part equals the trusted one.
        """
        if role in self._vouching:
            return self._vouching[role]
        trusted = self.role(role)
        with self._lock:
            version = self._ng.snapshot_version(role)
        if trusted is None or version is None:
            return ()
        with self._lock, self._mapped(role):
            raw = self._store.read(self.gun, role, version, limit=TARGETS_MAX_BYTES)
        try:
            md = Metadata.from_bytes(raw)
        except Exception:  # whatever hostile bytes provoke in the parser: not what was trusted
            md = None
        if md is None or md.signed != trusted:
            raise TamperedMetadataError(
                f"{role} metadata of {self.gun} changed in the store while it was read"
            )
        delegator = self.role(self.layout.delegator_of(role))
        assert delegator is not None
        result = delegator.get_verification_result(role, md.signed_bytes, md.signatures)
        self._vouching[role] = tuple(sorted(result.signed))
        return self._vouching[role]

    def expiry_dates(self) -> dict[str, datetime]:
        """Each verified role's expiry: the top-level roles and every signed delegated role."""
        dates = {ROOT: self.root.expires}
        for name in (TIMESTAMP, SNAPSHOT):
            signed = self._ng.trusted(name)
            if signed is not None:
                dates[name] = signed.expires
        targets = self.role(TARGETS)
        assert targets is not None
        dates[TARGETS] = targets.expires
        delegations = targets.delegations
        for name in sorted((delegations.roles or {}) if delegations is not None else {}):
            md = self.role(name)
            if md is not None:
                dates[name] = md.expires
        return dates

    def expires(self, role: str) -> datetime:
        """The earliest expiry among the metadata a tag in ``role`` depends on."""
        dates = [self.root.expires]
        for name in (TIMESTAMP, SNAPSHOT):
            signed = self._ng.trusted(name)
            if signed is not None:
                dates.append(signed.expires)
        for name in dict.fromkeys([TARGETS, role]):
            md = self.role(name)
            if md is not None:
                dates.append(md.expires)
        return min(dates)

    # --- the warm fast path (warm.py, ADR 0017) ---------------------------------------------
    def trusted_state(self) -> TrustedState | None:
        """What a later process checks to know a refresh would conclude what this session did:
        the timestamp bytes served in this refresh, the trusted root version, and the earliest
        expiry of everything trusted so far (every role read for the answers given). None when
        the refresh read no timestamp."""
        served = self._fetcher.timestamp_served
        if served is None:
            return None
        targets = self.role(TARGETS)
        assert targets is not None
        with self._lock:
            trusted = self._ng.all_trusted()
            top_level = {ROOT: self.root.expires, TARGETS: targets.expires}
            for name in (TIMESTAMP, SNAPSHOT):
                signed = self._ng.trusted(name)
                if signed is None:
                    return None
                top_level[name] = signed.expires
        return TrustedState(
            timestamp_sha256=hashlib.sha256(served).hexdigest(),
            root_version=self.root.version,
            top_level_expiry=top_level,
            earliest_expiry=min(signed.expires for signed in trusted),
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _mapped_errors(
    gun: str,
    *,
    step: str,
    fetcher: StoreFetcher | None = None,
    ng: _Ngclient | None = None,
) -> Iterator[None]:
    """ngclient's exceptions, by type, as trustkit's one-line refusals.

    python-tuf does not say which role failed; the role is the refresh step that was running
    (the last file fetched, else ``step``), except for expiry, where the trusted set says
    which metadata expired."""
    try:
        yield
    except TrustkitError:
        raise
    except (tuf_exc.RepositoryError, tuf_exc.DownloadError, OSError) as exc:
        role = (fetcher.step if fetcher is not None else None) or step
        raise _refusal(exc, gun, role, fetcher, ng) from None


def _refusal(
    exc: Exception,
    gun: str,
    role: str,
    fetcher: StoreFetcher | None,
    ng: _Ngclient | None,
) -> TrustkitError:
    if isinstance(exc, tuf_exc.ExpiredMetadataError):
        role, when = _expired_role(ng, role)
        return ExpiredMetadataError(
            f"{role} metadata of {gun} expired{when} (freeze attack or stale trust data)",
            hint=f"whoever holds its timestamp key renews it: {renew_hint(gun)}",
        )
    if isinstance(exc, tuf_exc.BadVersionNumberError):
        return RollbackError(
            f"trust data of {gun} is older than what this client already trusts or has an "
            f"unexpected version (rollback or mix-and-match attack?): {exc}"
        )
    if isinstance(exc, tuf_exc.UnsignedMetadataError):
        below = _below_threshold(ng, role, fetcher.served if fetcher is not None else None)
        error = BelowThresholdError if below else SignatureError
        return error(
            f"trust data of {gun} is not validly signed: {exc} "
            "(unknown key, or fewer signatures than the threshold)"
        )
    if isinstance(exc, tuf_exc.LengthOrHashMismatchError):
        return TamperedMetadataError(
            f"trust data of {gun} does not match the hash or length recorded for it "
            f"(mix-and-match or tampering): {exc}"
        )
    if isinstance(exc, tuf_exc.DownloadLengthMismatchError):
        return UntrustedError(f"trust data of {gun} is too large (endless data?): {exc}")
    if isinstance(exc, tuf_exc.RepositoryError):
        return UntrustedError(f"trust data of {gun} does not verify: {exc}")
    if isinstance(exc, tuf_exc.DownloadError):
        return StorageError(f"cannot fetch trust data of {gun}: {exc}")
    return StorageError(f"cannot use the trust cache of {gun}: {exc}")


def _expired_role(ng: _Ngclient | None, step: str) -> tuple[str, str]:
    """(role, " on <date>"): the first expired role of the trusted set (root, timestamp,
    snapshot are kept even when expired), else the role being loaded (not kept)."""
    if ng is not None:
        for name in (ROOT, TIMESTAMP, SNAPSHOT):
            signed = ng.trusted(name)
            if signed is not None and signed.is_expired(ng.reference_time):
                return name, f" on {signed.expires:%Y-%m-%d %H:%M:%S} UTC"
    return step, ""


def _below_threshold(ng: _Ngclient | None, role: str, served: bytes | None) -> bool:
    """Whether the metadata refused for its signatures carried some valid ones, just too few
    (as opposed to none: a forged or re-signed file). Decided from the bytes served and the
    delegator's keys, never from python-tuf's message."""
    if ng is None or served is None:
        return False
    try:
        md = Metadata.from_bytes(served)
        if role == ROOT:
            if not isinstance(md.signed, Root):
                return False
            root_result = md.signed.get_root_verification_result(
                ng.root, md.signed_bytes, md.signatures
            )
            failing = [r for r in (root_result.first, root_result.second) if not r.verified]
            return bool(failing) and all(r.signed for r in failing)
        delegator: Any = ng.root if role in (TIMESTAMP, SNAPSHOT, TARGETS) else None
        if delegator is None:
            # a bin is delegated by its family's role, every other role by targets
            delegator = ng.trusted(role.split(BIN_INFIX + "-", 1)[0] if is_bin(role) else TARGETS)
        if delegator is None:
            return False
        result = delegator.get_verification_result(role, md.signed_bytes, md.signatures)
    except Exception:  # a hostile file that does not even parse: plainly not signed
        return False
    return bool(result.signed) and len(result.signed) < result.threshold


def verify_cached(
    settings: Settings | Services,
    store: MetadataReader,
    gun: str,
    tag: str,
    root_file: Path | None,
) -> TrustedTarget:
    """Verify one tag. See ``session_for``."""
    return session_for(settings, store, gun, root_file, expect=(tag,)).find(tag)


def session_for(
    settings: Settings | Services,
    store: MetadataReader,
    gun: str,
    root_file: Path | None = None,
    *,
    expect: Sequence[str] = (),
) -> TrustSession:
    """A verified session. One refreshed earlier in this process is reused while the store's
    timestamp and root version are unchanged and nothing it trusts has expired: one timestamp
    read and a compare instead of a full ngclient refresh. ``expect``: the tags the caller
    looks up next, a read-ahead hint for a refresh (``MetadataReader.expect_targets``)."""
    if root_file is not None:
        return TrustSession(settings, store, gun, root_file=root_file)
    plain = settings if isinstance(settings, Settings) else settings.settings
    key = (str(cache_dir_for(plain, gun)), gun, id(store.__class__), store.description)
    if not store.exists(gun):
        raise UnknownRepositoryError(f"no trust data for {gun}", hint=_NO_DATA_HINT)
    with _SESSIONS_LOCK:
        try:
            timestamp = store.read(gun, TIMESTAMP, None, limit=TIMESTAMP_MAX_BYTES)
        except InputTooLargeError:
            raise UntrustedError(
                f"trust data of {gun} is too large (endless data?): timestamp metadata is "
                f"larger than the {TIMESTAMP_MAX_BYTES}-byte limit"
            ) from None
        root_version = store.root_version(gun)
        cached = _SESSIONS.get(key)
        if cached is not None and cached.still_current(timestamp, root_version):
            _SESSIONS.move_to_end(key)
            return cached.session
        _SESSIONS.pop(key, None)
        if expect:
            store.expect_targets(gun, expect)
        session = TrustSession(settings, store, gun, known_to_exist=True)
        _SESSIONS[key] = _CachedSession(session, timestamp, root_version)
        while len(_SESSIONS) > _MAX_SESSIONS:
            _SESSIONS.popitem(last=False)
        return session


class _CachedSession:
    def __init__(self, session: TrustSession, timestamp: bytes, root_version: int) -> None:
        self.session = session
        self.timestamp = timestamp
        self.root_version = root_version

    def still_current(self, timestamp: bytes, root_version: int) -> bool:
        return (
            timestamp == self.timestamp
            and root_version == self.session.root.version
            and root_version == self.root_version
            and not self.session.any_expired()
        )


_MAX_SESSIONS = 64
_SESSIONS: OrderedDict[tuple[str, str, int, str], _CachedSession] = OrderedDict()
_SESSIONS_LOCK = threading.Lock()


def forget_sessions() -> None:
    """Drop the in-process verification cache (tests, or after deleting the client cache)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


def _check_root_file(path: Path, data: bytes) -> None:
    """A pinned root the user handed us must at least be root metadata: anything else is their
    mistake (exit 2), not a verification failure of the collection."""
    from tuf.api.serialization import DeserializationError

    try:
        md = Metadata.from_bytes(data)
    except (DeserializationError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"root file {path} is not TUF root metadata: {exc}") from None
    if not isinstance(md.signed, Root):
        raise BadInputError(f"root file {path} holds {md.signed.type} metadata, not root")
