"""Fork detection: two different, validly signed sets with the same version.

python-tuf's client keeps what it trusted when a store serves metadata with the version it
already has: an equal-version timestamp is discarded, and a cached snapshot is reused without
comparing it with the hashes the new timestamp records. That is right for a repository that
never publishes one version twice, but two writers on a store without compare-and-swap (or a
store that hid one writer's publish from the other) can make two histories with the same
versions, and the client would silently keep one. trustkit refuses instead (``ForkError``), so
the split is seen and repaired rather than half the tags quietly vanishing for some clients.

Only validly signed metadata counts as the other history: garbage served at an equal version is
ignored exactly as python-tuf ignores it.
"""

from __future__ import annotations

from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.api.serialization import DeserializationError

from trustkit._fs import read_bounded
from trustkit.collections._tuf import Metadata, Root, Signed, Snapshot, Timestamp
from trustkit.collections.model import SNAPSHOT, SNAPSHOT_MAX_BYTES, TIMESTAMP
from trustkit.errors import ForkError

_HINT = (
    "two writers published the same version without seeing each other, or the trust server "
    "shows different clients different histories; re-sign from a machine that sees the whole "
    "history, then verify again"
)


def check_for_fork(
    gun: str,
    root: Root,
    timestamp: Signed | None,
    snapshot: Signed | None,
    served_timestamp: bytes | None,
    cache: Path,
) -> None:
    """Raise ForkError when the store shows another history with versions already trusted.

    ``root``/``timestamp``/``snapshot``: what the client trusts after a refresh;
    ``served_timestamp``: the timestamp bytes the store served in that refresh; ``cache``: the
    client cache, which holds the bytes of the trusted snapshot.
    """
    if not isinstance(timestamp, Timestamp):
        return
    if served_timestamp is not None:
        other = _signed_timestamp(root, served_timestamp)
        if other is not None and other.version == timestamp.version and other != timestamp:
            raise ForkError(
                f"trust data of {gun} forked: the store serves a different timestamp "
                f"version {timestamp.version} than the one this client trusts",
                hint=_HINT,
            )
    meta = timestamp.snapshot_meta
    if not isinstance(snapshot, Snapshot) or meta.version != snapshot.version:
        return
    try:
        # python-tuf reuses its cached snapshot without this check when the versions match
        trusted_snapshot = read_bounded(
            cache / f"{SNAPSHOT}.json", SNAPSHOT_MAX_BYTES, what="cached snapshot"
        )
    except FileNotFoundError:
        return
    try:
        meta.verify_length_and_hashes(trusted_snapshot)
    except tuf_exc.LengthOrHashMismatchError:
        raise ForkError(
            f"trust data of {gun} forked: its timestamp names a different snapshot version "
            f"{snapshot.version} than the one this client trusts",
            hint=_HINT,
        ) from None


def _signed_timestamp(root: Root, data: bytes) -> Timestamp | None:
    """``data`` as a timestamp validly signed under ``root``, else None."""
    try:
        md = Metadata.from_bytes(data)
        if not isinstance(md.signed, Timestamp):
            return None
        root.verify_delegate(TIMESTAMP, md.signed_bytes, md.signatures)
    except (DeserializationError, tuf_exc.RepositoryError, ValueError, KeyError, TypeError):
        return None
    return md.signed
