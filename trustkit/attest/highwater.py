"""Rollback protection for scan evidence: a client-side high-water mark per image and scanner key.

Whoever can push to a repository can put back an older ``.att`` manifest and referrers index and
so hide a newer scan (a CRITICAL found yesterday). Signatures cannot tell: the old envelopes are
genuinely signed. Like TUF's rollback protection for trust metadata, each client remembers, per
image digest and scanner key, the scanner time of the newest scan it has verified
(``<trust_dir>/scans/<hex>.json``), and refuses a later read whose newest scan by that key is
older, or which lacks that key's scans altogether.

What it protects: any client that has once seen the newer scan (the gate runner, the hook host, a
webhook replica with a persistent cache) never again accepts the older set. What it cannot: a
client that never saw the newer scan (a fresh cache, another webhook replica, a CI runner
without a kept cache) has nothing to compare with. docs/adr/0015-scan-evidence.md
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trustkit._fs import atomic_write, ensure_private_dir
from trustkit.attest._json import format_time, parse_time
from trustkit.model.findings import VerifiedScan

MAX_MARK_FILE = 256 * 1024
_VERSION = 1
#: one read-check-raise at a time in a process (the webhook verifies in threads): a thread
#: reading before another's raise must not write the lower mark back
_LOCK = threading.Lock()


def scan_order_time(scan: VerifiedScan) -> datetime:
    """The time scans are ordered and compared by: the scanner's, else the statement's."""
    return scan.scanned_at or scan.scan_finished_on


@dataclass(frozen=True)
class Rollback:
    keyid: str
    seen: datetime  # the newest scan this client verified before
    now: datetime | None  # the newest offered now (None: that key's scans are gone)

    def reason(self) -> str:
        offered = f"the newest offered is {format_time(self.now)}" if self.now else "none is"
        return (
            f"scan evidence rolled back: this client has verified a scan by key "
            f"{self.keyid[:12]} from {format_time(self.seen)}, {offered} "
            "(an older attestation set was restored; all scans of this image are refused)"
        )


class ScanMarks:
    """The high-water marks of one client (a directory), read and written per image digest."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, image_digest: str) -> Path:
        return self.directory / f"{image_digest.partition(':')[2] or image_digest}.json"

    def load(self, image_digest: str) -> dict[str, datetime]:
        path = self._file(image_digest)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_MARK_FILE + 1)
        except FileNotFoundError:
            return {}
        try:
            doc = json.loads(data) if len(data) <= MAX_MARK_FILE else None
        except ValueError:
            doc = None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, dict):
            # a damaged mark file must not silently turn the protection off
            from trustkit.errors import StorageError

            raise StorageError(f"scan high-water marks {path} are unreadable; remove the file")
        out: dict[str, datetime] = {}
        for keyid, text in keys.items():
            moment = parse_time(text) if isinstance(text, str) else None
            if isinstance(keyid, str) and moment is not None:
                out[keyid] = moment
        return out

    def check_and_raise(
        self, image_digest: str, scans: Sequence[VerifiedScan], keyids: Sequence[str]
    ) -> list[Rollback]:
        """Rollbacks among ``scans`` (verified against ``keyids``); raise the marks otherwise.

        Only keys the caller verified with are judged: a key it did not trust is not offered."""
        with _LOCK:
            return self._check_and_raise(image_digest, scans, keyids)

    def _check_and_raise(
        self, image_digest: str, scans: Sequence[VerifiedScan], keyids: Sequence[str]
    ) -> list[Rollback]:
        marks = self.load(image_digest)
        newest: dict[str, datetime] = {}
        for scan in scans:
            moment = scan_order_time(scan)
            if scan.signer_keyid not in newest or moment > newest[scan.signer_keyid]:
                newest[scan.signer_keyid] = moment
        rollbacks = [
            Rollback(keyid, seen, newest.get(keyid))
            for keyid, seen in sorted(marks.items())
            if keyid in keyids and (keyid not in newest or newest[keyid] < seen)
        ]
        if rollbacks:
            return rollbacks
        raised = {k: v for k, v in newest.items() if k not in marks or v > marks[k]}
        if raised:
            marks.update(raised)
            ensure_private_dir(self.directory)
            doc = {"version": _VERSION, "keys": {k: format_time(v) for k, v in marks.items()}}
            atomic_write(self._file(image_digest), json.dumps(doc, sort_keys=True).encode())
        return []
