"""Verification: python-tuf's ngclient over a store, with trustkit's errors and DCT semantics.

The Updater reads through ``StoreFetcher`` (bounded reads, no network of its own) and keeps the
trusted metadata of each collection in ``settings.client_cache_dir/<escaped GUN>/``. The first
contact trusts the store's ``1.root.json`` (TOFU, as Notary does) unless a root file is given,
then walks the root chain. Pull semantics follow Docker: ``targets/releases`` first, then
``targets``.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from tuf.api import exceptions as tuf_exc
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from trustkit._fs import ensure_private_dir, read_bounded
from trustkit.collections._tuf import Root, Targets
from trustkit.collections.model import (
    MAX_DELEGATIONS,
    MAX_ROOT_ROTATIONS,
    RELEASES,
    ROOT,
    ROOT_MAX_BYTES,
    SNAPSHOT_MAX_BYTES,
    TARGETS,
    TARGETS_MAX_BYTES,
    TIMESTAMP,
    TIMESTAMP_MAX_BYTES,
    TrustedTarget,
    signer_name_of,
    utcnow,
)
from trustkit.config import Settings
from trustkit.errors import (
    BadInputError,
    DigestMismatchError,
    ExpiredMetadataError,
    InputTooLargeError,
    NotSignedError,
    RollbackError,
    SignatureError,
    StorageError,
    TrustkitError,
    UnknownRepositoryError,
    UntrustedError,
)
from trustkit.stores.interface import MetadataNotFoundError, MetadataStore, escape_gun

BASE_URL = "trustkit-store:///"
_NO_DATA_HINT = "sign a tag or add a signer first"
_VERSIONED_NAME = re.compile(r"^([0-9]{1,12})\.(.+)\.json$")
_UPDATER_CONFIG = UpdaterConfig(
    max_root_rotations=MAX_ROOT_ROTATIONS,
    max_delegations=MAX_DELEGATIONS,
    root_max_length=ROOT_MAX_BYTES,
    timestamp_max_length=TIMESTAMP_MAX_BYTES,
    snapshot_max_length=SNAPSHOT_MAX_BYTES,
    targets_max_length=TARGETS_MAX_BYTES,
)


class StoreFetcher(FetcherInterface):
    """Serves the Updater's metadata URLs from a MetadataStore, never more than asked for."""

    def __init__(self, store: MetadataStore, gun: str) -> None:
        self._store = store
        self._gun = gun

    def _fetch(self, url: str) -> Iterator[bytes]:
        yield self.download_bytes(url, TARGETS_MAX_BYTES)

    def download_bytes(self, url: str, max_length: int) -> bytes:
        role, version = _parse_url(url)
        try:
            return self._store.read(self._gun, role, version, limit=max_length)
        except MetadataNotFoundError as exc:
            raise tuf_exc.DownloadHTTPError(str(exc), 404) from None
        except InputTooLargeError:
            raise tuf_exc.DownloadLengthMismatchError(
                f"{role} metadata is larger than the {max_length}-byte limit"
            ) from None


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


class TrustSession:
    """One refreshed, verified view of a collection (use as a context manager)."""

    def __init__(
        self, settings: Settings, store: MetadataStore, gun: str, *, root_file: Path | None = None
    ) -> None:
        self.gun = gun
        self._store = store
        if not store.exists(gun):
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
            with _mapped_errors(gun):
                bootstrap = store.read(gun, ROOT, 1, limit=ROOT_MAX_BYTES)
        with _mapped_errors(gun):
            self._updater = Updater(
                str(cache),
                BASE_URL,
                fetcher=StoreFetcher(store, gun),
                config=_UPDATER_CONFIG,
                bootstrap=bootstrap,
            )
        with _mapped_errors(gun, self._updater):
            self._updater.refresh()

    # ngclient has no public "load this role" call: _load_targets verifies a delegated role
    # against its delegator, the snapshot and the cache, which is exactly the DCT walk we need.
    def role(self, name: str) -> Targets | None:
        """A verified targets role, or None when it was delegated but never signed."""
        with _mapped_errors(self.gun, self._updater):
            if name == TARGETS:
                return self._updater._load_targets(TARGETS, ROOT)
            snapshot = self._updater._trusted_set.snapshot
            if f"{name}.json" not in snapshot.meta:
                return None
            return self._updater._load_targets(name, TARGETS)

    def any_expired(self) -> bool:
        """Whether anything this session trusts has expired since it was verified."""
        now = utcnow()
        return any(signed.is_expired(now) for signed in self._updater._trusted_set)

    @property
    def root(self) -> Root:
        return self._updater._trusted_set.root

    def delegated_names(self) -> list[str]:
        targets = self.role(TARGETS)
        assert targets is not None
        if targets.delegations is None or targets.delegations.roles is None:
            return []
        return list(targets.delegations.roles)

    def signer_roles(self) -> list[str]:
        return [r for r in self.delegated_names() if r != RELEASES]

    def find(self, tag: str) -> TrustedTarget:
        """The tag as DCT trusts it: from targets/releases when delegated, else targets."""
        for role_name in self._release_roles():
            role = self.role(role_name)
            if role is not None and tag in role.targets:
                return self._trusted(role_name, tag, role)
        raise NotSignedError(f"tag {tag} of {self.gun} is not signed")

    def signed_tags(self) -> list[TrustedTarget]:
        found: dict[str, TrustedTarget] = {}
        for role_name in self._release_roles():
            role = self.role(role_name)
            if role is None:
                continue
            for tag in role.targets:
                if tag not in found:
                    found[tag] = self._trusted(role_name, tag, role)
        return [found[t] for t in sorted(found)]

    def _release_roles(self) -> list[str]:
        return [RELEASES, TARGETS] if RELEASES in self.delegated_names() else [TARGETS]

    def _trusted(self, role_name: str, tag: str, role: Targets) -> TrustedTarget:
        target = role.targets[tag]
        sha256 = target.hashes.get("sha256")
        if sha256 is None:
            raise UntrustedError(f"tag {tag} of {self.gun} has no sha256 digest")
        signers: list[str] = []
        for signer_role in self.signer_roles():
            try:
                theirs = self.role(signer_role)
            except UntrustedError:
                continue  # one signer's broken metadata does not decide the tag
            if theirs is not None and tag in theirs.targets:
                other = theirs.targets[tag]
                if other.hashes == target.hashes and other.length == target.length:
                    signers.append(signer_name_of(signer_role))
        return TrustedTarget(
            gun=self.gun,
            tag=tag,
            digest=f"sha256:{sha256}",
            size=target.length,
            role=role_name,
            signers=tuple(signers),
        )


_ROLE_IN_MESSAGE = re.compile(r"^(?:New |Final )?([A-Za-z0-9_./%-]+?)(?:\.json)? ")


@contextlib.contextmanager
def _mapped_errors(gun: str, updater: Updater | None = None) -> Iterator[None]:
    """ngclient's exceptions as trustkit's one-line refusals."""
    try:
        yield
    except TrustkitError:
        raise
    except tuf_exc.ExpiredMetadataError as exc:
        role = _role_in(str(exc))
        when = _expiry_of(updater, role)
        raise ExpiredMetadataError(
            f"{role} metadata of {gun} expired{when} (freeze attack or stale trust data)"
        ) from None
    except tuf_exc.BadVersionNumberError as exc:
        raise RollbackError(
            f"trust data of {gun} is older than what this client already trusts or has an "
            f"unexpected version (rollback or mix-and-match attack?): {exc}"
        ) from None
    except tuf_exc.UnsignedMetadataError as exc:
        raise SignatureError(
            f"trust data of {gun} is not validly signed: {exc} "
            "(unknown key, or fewer signatures than the threshold)"
        ) from None
    except tuf_exc.LengthOrHashMismatchError as exc:
        raise DigestMismatchError(
            f"trust data of {gun} does not match the hash or length recorded for it "
            f"(mix-and-match or tampering): {exc}"
        ) from None
    except tuf_exc.DownloadLengthMismatchError as exc:
        raise UntrustedError(f"trust data of {gun} is too large (endless data?): {exc}") from None
    except tuf_exc.RepositoryError as exc:
        raise UntrustedError(f"trust data of {gun} does not verify: {exc}") from None
    except tuf_exc.DownloadError as exc:
        raise StorageError(f"cannot fetch trust data of {gun}: {exc}") from None
    except OSError as exc:
        raise StorageError(f"cannot use the trust cache of {gun}: {exc}") from None


def _expiry_of(updater: Updater | None, role: str) -> str:
    """ " on <date>" when the expired role made it into the trusted set (timestamp, snapshot)."""
    if updater is None:
        return ""
    try:
        expires = updater._trusted_set[role].expires
    except (KeyError, AttributeError):
        return ""
    return f" on {expires:%Y-%m-%d %H:%M:%S} UTC"


def _role_in(message: str) -> str:
    match = _ROLE_IN_MESSAGE.match(message)
    return match.group(1) if match else "trust"


def verify_cached(
    settings: Settings, store: MetadataStore, gun: str, tag: str, root_file: Path | None
) -> TrustedTarget:
    """Verify one tag. A session refreshed earlier in this process is reused while the store's
    timestamp and root version are unchanged and nothing it trusts has expired: one timestamp
    read and a compare instead of a full ngclient refresh."""
    if root_file is not None:
        return TrustSession(settings, store, gun, root_file=root_file).find(tag)
    key = (str(cache_dir_for(settings, gun)), gun, id(store.__class__), store.description)
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
            return cached.session.find(tag)
        _SESSIONS.pop(key, None)
        session = TrustSession(settings, store, gun)
        _SESSIONS[key] = _CachedSession(session, timestamp, root_version)
        while len(_SESSIONS) > _MAX_SESSIONS:
            _SESSIONS.popitem(last=False)
        return session.find(tag)


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

    from trustkit.collections._tuf import Metadata, Root

    try:
        md = Metadata.from_bytes(data)
    except (DeserializationError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"root file {path} is not TUF root metadata: {exc}") from None
    if not isinstance(md.signed, Root):
        raise BadInputError(f"root file {path} holds {md.signed.type} metadata, not root")
