"""The embedded trust server: a local directory, one sub-directory per collection.

Layout of ``<server_dir>/<escaped GUN>/``::

    1.root.json 2.root.json ...          every root version (clients walk the chain)
    7.snapshot.json 4.targets.json 2.targets%2Freleases.json ...   consistent-snapshot files
    12.timestamp.json                    timestamps, versioned on disk, served as timestamp.json
    current.json                         {"root": N, "timestamp": M}: the commit point
    staged/                              a publish in progress (files + manifest.json)
    pending/<id>.json                    co-signing: changes waiting for more signatures
    .lock                                writer lock (``writing``; ``publish`` takes it too)

Old versions are pruned after each publish (``file:///path?keep=N``, default 4): every root is
kept (clients walk the chain), and of every other role the newest ``keep`` versions, so a reader
holding a slightly older timestamp still finds its snapshot and the roles it pins. The same
``keep`` as the registry store's (``registry://?keep=N``).

A publish first stages every file, then writes the manifest (the staged set is now complete and
recoverable), copies the versioned files into place and finally rewrites ``current.json``
atomically. Nothing a reader can see changes before that last rename, and a root newer than
``current.json`` is never served, so a crash at any point leaves the last good set readable.
The next writer rolls a complete staged set forward and throws an incomplete one away.

Publishing is optimistic like every store's (``publish(expected=...)``), but a local directory
has a cheap lock: ``writing`` holds it around a writer's load + publish, so local writers queue
instead of conflicting, and ``publish`` takes it itself when the caller does not hold it.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from trustkit._fs import atomic_write, ensure_private_dir, file_lock, read_bounded
from trustkit.errors import BadInputError, StorageError
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
    escape_gun,
    metadata_filename,
)

HEAD_FILE = "current.json"
STAGED_DIR = "staged"
PENDING_DIR = "pending"
MANIFEST_FILE = "manifest.json"
_HEAD_LIMIT = 4096
_MANIFEST_LIMIT = 1 << 20
#: versions kept of each role other than root (the registry store's default too)
DEFAULT_KEEP = 4
MAX_KEEP = 1000


class LocalDirStore(MetadataStore):
    """Trust metadata in a local directory (``SERVIN_CONTENT_TRUST_SERVER`` unset or file://)."""

    def __init__(self, root: Path, *, keep: int = DEFAULT_KEEP) -> None:
        if not 1 <= keep <= MAX_KEEP:
            raise BadInputError(f"local trust store {root}: keep must be between 1 and {MAX_KEEP}")
        self.root = root
        self.keep = keep
        self.description = f"local trust store {root}"
        # the commit point is read several times per verification: parse it again only when
        # the file was replaced (every publish renames a new one into place) or touched
        self._heads: dict[str, tuple[tuple[int, int, int], dict[str, int]]] = {}

    @classmethod
    def from_url(cls, url: str) -> LocalDirStore:
        """``file:///path`` or ``file:///path?keep=N``."""
        path, _, query = url[len("file://") :].partition("?")
        values = parse_qs(query, keep_blank_values=True)
        if set(values) - {"keep"}:
            raise BadInputError(
                f"trust server {url!r}: unknown option(s) "
                f"{', '.join(sorted(set(values) - {'keep'}))}",
                hint="e.g. file:///srv/trust?keep=4",
            )
        try:
            keep = int(values["keep"][-1]) if "keep" in values else DEFAULT_KEEP
        except ValueError:
            raise BadInputError(f"trust server {url!r}: keep is a whole number") from None
        return cls(Path(path), keep=keep)

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(server_signed_roles=frozenset(), pending_changes=True)

    @property
    def pending(self) -> PendingChanges:
        return _LocalPending(self)

    # --- reading --------------------------------------------------------------------------
    def _dir(self, gun: str) -> Path:
        return self.root / escape_gun(gun)

    def _head(self, gun: str) -> dict[str, int] | None:
        path = self._dir(gun) / HEAD_FILE
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._heads.pop(gun, None)
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._heads.get(gun)
        if cached is not None and cached[0] == stamp:
            return dict(cached[1])
        try:
            raw = read_bounded(path, _HEAD_LIMIT, what="store pointer")
        except FileNotFoundError:
            return None
        head = _parse_head(raw, path)
        # keyed by the stat taken before the read: a file replaced in between is read again
        # next time (its inode or time differs), never served stale under the new stamp
        self._heads[gun] = (stamp, head)
        return dict(head)

    def exists(self, gun: str) -> bool:
        return self._head(gun) is not None

    def root_version(self, gun: str) -> int:
        head = self._head(gun)
        return 0 if head is None else head["root"]

    def generation(self, gun: str) -> str | None:
        head = self._head(gun)  # the commit point: changes with every publish
        return None if head is None else f"{head['root']}.{head['timestamp']}"

    def read(self, gun: str, role: str, version: int | None, *, limit: int) -> bytes:
        head = self._head(gun)
        if head is None:
            raise MetadataNotFoundError(f"no trust data for {gun} in {self.description}")
        if role == "timestamp":
            # the timestamp is only ever served as "the current one"
            if version is not None:
                raise MetadataNotFoundError(f"{gun}: versioned timestamp requested")
            version = head["timestamp"]
        elif version is None:
            raise MetadataNotFoundError(f"{gun}: {role} is only published by version")
        elif role == "root" and version > head["root"]:
            raise MetadataNotFoundError(f"{gun}: no root version {version}")
        path = self._dir(gun) / metadata_filename(role, version)
        try:
            return read_bounded(path, limit, what=f"{role} metadata")
        except FileNotFoundError:
            raise MetadataNotFoundError(f"{gun}: {path.name} is missing") from None

    # --- writing --------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, gun: str) -> Iterator[None]:
        directory = ensure_private_dir(self._dir(gun))
        lock = (directory / ".lock").absolute()
        held = _locks_held_by_this_thread()
        if lock in held:  # re-entered (publish inside writing, maybe through another instance)
            yield
            return
        with file_lock(lock):
            held.add(lock)
            try:
                self._recover(gun)
                yield
            finally:
                held.discard(lock)

    def publish(self, gun: str, files: Sequence[MetadataFile], *, expected: str | None) -> str:
        self.check_publishable(gun, files)
        with self.writing(gun):
            check_expected(self.description, gun, expected, self.generation(gun))
            self._stage_and_apply(gun, files)
        generation = self.generation(gun)
        assert generation is not None
        return generation

    def _stage_and_apply(self, gun: str, files: Sequence[MetadataFile]) -> None:
        directory = ensure_private_dir(self._dir(gun))
        head = self._head(gun)
        new_head = {
            "root": max([f.version for f in files if f.role == "root"] or [_root_of(head)]),
            "timestamp": next(f.version for f in files if f.role == "timestamp"),
        }
        staged = directory / STAGED_DIR
        _clear(staged, keep_dir=True)  # anything left there was never published
        ensure_private_dir(staged)
        names = []
        for item in files:
            name = _disk_name(item)
            _write_synced(staged / name, item.data)
            names.append(name)
        manifest = {"base": head, "head": new_head, "files": names}
        # one directory sync (inside atomic_write) makes every staged entry durable
        atomic_write(staged / MANIFEST_FILE, json.dumps(manifest).encode())
        self._apply(directory, manifest)

    def _apply(self, directory: Path, manifest: dict[str, Any]) -> None:
        """Move the staged files into place (renames: their bytes were synced when staged),
        sync the directory once, then move the head: the commit point."""
        staged = directory / STAGED_DIR
        try:
            for name in manifest["files"]:
                if (staged / name).exists():
                    os.chmod(staged / name, 0o644)
                    os.replace(staged / name, directory / name)
                # else: moved by an earlier, interrupted apply of this same manifest
            _sync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot publish into {directory}: {exc.strerror}") from None
        atomic_write(directory / HEAD_FILE, json.dumps(manifest["head"]).encode(), mode=0o644)
        with contextlib.suppress(FileNotFoundError):
            (staged / MANIFEST_FILE).unlink()
        self._prune(directory, manifest["files"])

    def _prune(self, directory: Path, published: list[str]) -> None:
        """Drop versions older than the newest ``keep`` of each role just published (never a
        root). Versions of a role are consecutive, so walking down from ``version - keep``
        until a file is missing also clears what an earlier, larger ``keep`` left behind;
        roles not published keep their files (their current version is still referenced)."""
        for name in published:
            version_text, _, escaped = name.partition(".")
            role = unquote(escaped[: -len(".json")])
            if role == "root" or not version_text.isdigit():
                continue
            old = int(version_text) - self.keep
            while old >= 1:
                try:
                    (directory / metadata_filename(role, old)).unlink()
                except FileNotFoundError:
                    break
                except OSError:  # the publish is committed: the next one prunes again
                    return
                old -= 1

    def _recover(self, gun: str) -> None:
        """Finish a complete staged publish whose base is still current; drop anything else."""
        directory = self._dir(gun)
        staged = directory / STAGED_DIR
        if not (staged / MANIFEST_FILE).exists():
            _clear(staged, keep_dir=True)  # an incomplete staging: never published
            return
        try:
            raw = read_bounded(staged / MANIFEST_FILE, _MANIFEST_LIMIT, what="staged manifest")
            manifest = json.loads(raw)
            usable = manifest["base"] == self._head(gun) and all(
                isinstance(n, str)
                and "/" not in n
                and ((staged / n).is_file() or (directory / n).is_file())
                for n in manifest["files"]
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            usable = False
        if usable:
            self._apply(directory, manifest)
        else:
            _clear(staged)


class _LocalPending(PendingChanges):
    """``pending/<id>.json`` beside the collection's metadata (written under ``writing``)."""

    def __init__(self, store: LocalDirStore) -> None:
        self._store = store

    def _path(self, gun: str, pending_id: str) -> Path:
        return self._store._dir(gun) / PENDING_DIR / f"{check_pending_id(pending_id)}.json"

    def list(self, gun: str) -> builtins.list[str]:
        directory = self._store._dir(gun) / PENDING_DIR
        try:
            names = sorted(p.name for p in directory.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list pending changes of {gun}: {exc}") from None
        ids = [n[: -len(".json")] for n in names if n.endswith(".json")]
        # anything else (temporary files, foreign names) is not a pending change
        valid = [i for i in ids if _is_pending_id(i)]
        return valid[:MAX_PENDING_LISTED]

    def read(self, gun: str, pending_id: str, *, limit: int) -> bytes:
        path = self._path(gun, pending_id)
        try:
            return read_bounded(path, limit, what="pending change")
        except FileNotFoundError:
            raise PendingNotFoundError(f"no pending change {pending_id} of {gun}") from None

    def write(self, gun: str, pending_id: str, data: bytes) -> None:
        path = self._path(gun, pending_id)
        ensure_private_dir(path.parent)
        atomic_write(path, data, mode=0o644)

    def remove(self, gun: str, pending_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(gun, pending_id).unlink()


_THREAD = threading.local()


def _locks_held_by_this_thread() -> set[Path]:
    """The collection locks this thread holds: flock belongs to an open file, so a thread taking
    a lock it already holds through another file descriptor would wait for itself."""
    held: set[Path] | None = getattr(_THREAD, "locks", None)
    if held is None:
        held = _THREAD.locks = set()
    return held


def _is_pending_id(name: str) -> bool:
    return PENDING_ID_RE.match(name) is not None


def _root_of(head: dict[str, int] | None) -> int:
    return 0 if head is None else head["root"]


def _write_synced(path: Path, data: bytes) -> None:
    """A staged file, its bytes on disk (its directory entry is synced with the manifest)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clear(staged: Path, *, keep_dir: bool = False) -> None:
    """Empty the staging directory (files only: it never holds directories)."""
    if not staged.exists():
        return
    if not keep_dir:
        import shutil  # only to drop a staging directory: not at start-up

        shutil.rmtree(staged, ignore_errors=True)
        return
    for entry in staged.iterdir():
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def _disk_name(item: MetadataFile) -> str:
    return metadata_filename(item.role, item.version)


def _parse_head(raw: bytes, path: Path) -> dict[str, int]:
    try:
        data = json.loads(raw)
        head = {"root": int(data["root"]), "timestamp": int(data["timestamp"])}
    except (ValueError, KeyError, TypeError):
        raise StorageError(f"corrupt store pointer {path}") from None
    if head["root"] < 1 or head["timestamp"] < 1:
        raise StorageError(f"corrupt store pointer {path}")
    return head
