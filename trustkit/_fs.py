"""Small file-system helpers: atomic writes, private directories, protected reads, locks.

Every write of trust data or keys goes through ``atomic_write`` so a crash leaves either the old
file or the new one, never a torn one. Every directory trustkit creates is 0700, whatever the
umask. Every file whose contents decide trust (policies, keys, key records) is read through
``read_protected``, which refuses what another user could have written; every lock file is opened
by ``file_lock``, which never follows a planted symlink.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from trustkit.errors import BadInputError, LockTimeoutError, StorageError, TrustkitError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
#: group and others: bits that let another user change a file or a directory's entries
WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
#: group and others: bits that let another user read a secret
READABLE_BY_OTHERS = 0o077
_READ_CHUNK = 1024 * 1024


def make_private_dirs(path: Path) -> Path:
    """Create ``path`` and any missing parents, each 0700 whatever the umask (``mkdir -p -m
    700`` only protects the leaf: under ``umask 002`` the parents would be 0775)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by a parallel trustkit: that one chose the mode
        os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents, all 0700) and make sure the leaf is 0700."""
    try:
        make_private_dirs(path)
        if (path.stat().st_mode & 0o777) != PRIVATE_DIR_MODE:
            path.chmod(PRIVATE_DIR_MODE)
    except OSError as exc:
        raise StorageError(f"cannot create directory {path}: {exc.strerror}") from exc
    return path


def atomic_write(path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    import tempfile  # only writers need it (shutil, random...): readers start faster

    directory = path.parent
    try:
        make_private_dirs(directory)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from exc


def read_bounded(path: Path, limit: int, *, what: str = "file") -> bytes:
    """Read at most ``limit`` bytes; a larger file is an error, never truncated silently."""
    from trustkit.errors import InputTooLargeError

    try:
        with path.open("rb") as handle:
            # sized by the file, not the bound: read(limit + 1) allocates the whole bound
            # (16 MiB for a targets role) before reading a 20 KB file
            expected = min(os.fstat(handle.fileno()).st_size, limit)
            data = handle.read(expected + 1)  # fewer bytes than asked only at the end
            if len(data) > expected:  # larger than the stat said (or than the bound)
                chunks, total = [data], len(data)
                while total <= limit:
                    chunk = handle.read(min(_READ_CHUNK, limit + 1 - total))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    total += len(chunk)
                data = b"".join(chunks)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise InputTooLargeError(f"{what} {path} is larger than the {limit}-byte limit")
    return data


def _on_read_only_mount(where: int | Path) -> bool:
    """A read-only mount (a Kubernetes ConfigMap volume) cannot be written, whatever its modes."""
    try:
        flags = os.fstatvfs(where).f_flag if isinstance(where, int) else os.statvfs(where).f_flag
        return bool(flags & os.ST_RDONLY)
    except OSError:
        return False


def _owner_is_trusted(info: os.stat_result) -> bool:
    return info.st_uid in (os.geteuid(), 0)


def _protection_problem(
    info: os.stat_result, where: int | Path, path: Path, *, secret: bool
) -> tuple[str, str] | None:
    """(what is wrong, what to do) for a file or directory another user could have changed."""
    mode = stat.S_IMODE(info.st_mode)
    if not _owner_is_trusted(info):
        return (
            f"is owned by uid {info.st_uid}, neither you nor root",
            f"run chown {os.geteuid()} {path}",
        )
    if mode & WRITABLE_BY_OTHERS and not _on_read_only_mount(where):
        return f"is writable by other users (mode {mode:o})", f"run chmod go-w {path}"
    if secret and mode & READABLE_BY_OTHERS:
        return f"is readable by other users (mode {mode:o})", f"run chmod 600 {path}"
    return None


def check_protected_dir(
    path: Path, *, what: str, error: type[TrustkitError] = BadInputError
) -> None:
    """Refuse a directory whose entries another user could add, replace or remove.

    The sticky bit does not help here: in a sticky world-writable directory anyone can still
    add a file, and a policy directory loads every file it holds.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except NotADirectoryError:
        raise error(f"{what} {path} is not a directory") from None
    except OSError as exc:
        raise StorageError(f"cannot open {what} {path}: {exc.strerror}") from exc
    try:
        problem = _protection_problem(os.fstat(fd), fd, path, secret=False)
    finally:
        os.close(fd)
    if problem is not None:
        raise error(f"{what} {path} {problem[0]}", hint=problem[1])


def read_protected(
    path: Path,
    limit: int,
    *,
    what: str,
    error: type[TrustkitError] = BadInputError,
    secret: bool = False,
) -> bytes:
    """Read a file whose contents decide trust: a policy, a key, a key record.

    It must be a regular file (a FIFO would hang the reader, a device is no policy) owned by you
    or root, not writable by group or others (unless on a read-only mount, as ConfigMap volumes
    are), nor readable by them when ``secret``; the directory that really holds it (symlinks
    resolved, as a ConfigMap's ``..data`` links are) must not be writable by others either,
    unless sticky. Checked on the open descriptor, so the file cannot be swapped between check
    and read. ``FileNotFoundError`` passes through (also for a dangling symlink); everything else
    is ``error`` (exit 2) or ``StorageError``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise StorageError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise error(f"{what} {path} is {kind}")
        problem = _protection_problem(info, fd, path, secret=secret)
        if problem is not None:
            raise error(f"{what} {path} {problem[0]}", hint=problem[1])
        _check_holding_dir(Path(os.path.realpath(path)).parent, path, what=what, error=error)
        chunks: list[bytes] = []
        total = 0
        while total <= limit and (chunk := os.read(fd, min(_READ_CHUNK, limit + 1 - total))):
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise StorageError(f"cannot read {what} {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if total > limit:
        from trustkit.errors import InputTooLargeError

        raise InputTooLargeError(f"{what} {path} is larger than the {limit}-byte limit")
    return b"".join(chunks)


def _check_holding_dir(
    directory: Path, path: Path, *, what: str, error: type[TrustkitError]
) -> None:
    # stat, not open: a directory we may only traverse (0711) holds files we may still read
    info = os.stat(directory)
    if info.st_mode & stat.S_ISVTX and _owner_is_trusted(info):
        return  # /tmp-like: others may add files here but cannot replace this one
    problem = _protection_problem(info, directory, directory, secret=False)
    if problem is not None:
        raise error(
            f"{what} {path} is in directory {directory}, which {problem[0]}", hint=problem[1]
        )


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float = 30.0) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (created 0600 if needed), so writers are serialised.

    The lock file must be a regular file owned by you: a symlink planted in its place is never
    followed (``O_NOFOLLOW``, else opening it would create or open any file the link names with
    your rights), and a FIFO or someone else's file is refused.
    """
    try:
        make_private_dirs(path.parent)
        fd = os.open(
            path,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY,
            PRIVATE_FILE_MODE,
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorageError(
                f"lock file {path} is a symbolic link; refusing to follow it",
                hint=f"someone planted it: inspect and remove {path}",
            ) from None
        raise StorageError(f"cannot open lock file {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise StorageError(
                f"lock file {path} is not a regular file owned by you",
                hint=f"someone planted it: inspect and remove {path}",
            )
    except BaseException:
        os.close(fd)
        raise
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise StorageError(f"cannot lock {path}: {exc.strerror}") from exc
                if time.monotonic() > deadline:
                    raise LockTimeoutError(
                        f"another trustkit process holds {path} for more than {timeout:.0f}s"
                    ) from exc
                time.sleep(0.02)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
