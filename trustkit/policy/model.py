"""A loaded, validated policy: frozen, with its lookups precomputed for fast evaluation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit import refs
from trustkit.attest.model import Severity
from trustkit.policy.globs import ImageGlob, matches_any
from trustkit.verdict import Action, Context

if TYPE_CHECKING:
    from trustkit.keys._sslib import Key

API_VERSION = "trustkit.dev/v1"
KIND = "ImagePolicy"

_DURATION_RE = re.compile(r"^([1-9][0-9]{0,5})([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``"7d"`` → 7 days. Units s, m, h, d, w; raise ValueError otherwise."""
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}: use a number and one of s, m, h, d, w (7d)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class AllowlistEntry:
    vulnerability_id: str  # upper-cased for matching
    reason: str
    owner: str
    expires: datetime  # aware, UTC; the entry applies strictly before this instant
    expires_text: str  # as written, for messages
    images: tuple[ImageGlob, ...] = ()

    def applies_to(self, ref: refs.ImageRef, digest: str | None) -> bool:
        return not self.images or matches_any(self.images, ref, digest)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires


@dataclass(frozen=True)
class TrustedScanner:
    text: str  # as written: a key id or a PEM path
    keyid: str
    key: Any = None  # securesystemslib Key when loaded from a PEM file


@dataclass(frozen=True)
class SignedRequirement:
    signers: tuple[str, ...] = ()  # normalised: without the "targets/" prefix
    threshold: int = 0  # how many of ``signers`` must have signed (0 when no signers are named)


def signer_name(name: str) -> str:
    """Delegation ``targets/alice`` and signer ``alice`` are the same signer for policy."""
    return name[len("targets/") :] if name.startswith("targets/") else name


@dataclass(frozen=True)
class Policy:
    name: str
    action: Action
    scope: tuple[ImageGlob, ...]
    exclude: tuple[ImageGlob, ...] = ()
    description: str | None = None
    contexts: frozenset[Context] | None = None  # None: every context
    severity: Severity | None = None
    ignore_unfixed: bool = False
    allowlist: tuple[AllowlistEntry, ...] = ()
    denylist: tuple[str, ...] = ()  # upper-cased
    max_scan_age: timedelta | None = None
    require_scan: bool = False  # resolved: the file's value or the action's default
    trusted_scanners: tuple[TrustedScanner, ...] = ()
    require_signed: SignedRequirement | None = None
    source: Path | None = None
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # precomputed lookups
    allowlist_by_id: dict[str, tuple[AllowlistEntry, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    denyset: frozenset[str] = frozenset()
    trusted_keyids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        by_id: dict[str, list[AllowlistEntry]] = {}
        for entry in self.allowlist:
            by_id.setdefault(entry.vulnerability_id, []).append(entry)
        object.__setattr__(self, "allowlist_by_id", {k: tuple(v) for k, v in by_id.items()})
        object.__setattr__(self, "denyset", frozenset(self.denylist))
        object.__setattr__(
            self, "trusted_keyids", frozenset(s.keyid for s in self.trusted_scanners)
        )

    @property
    def requires_signed(self) -> bool:
        return self.require_signed is not None

    @property
    def needs_scans(self) -> bool:
        """Whether any rule looks at scan attestations (so the pipeline must fetch them)."""
        return self.require_scan or self.severity is not None or bool(self.denylist)

    def applies_in(self, context: Context | str | None) -> bool:
        return self.contexts is None or context is None or Context(context) in self.contexts

    def matches(
        self,
        ref: refs.ImageRef | str,
        digest: str | None = None,
        *,
        context: Context | str | None = None,
    ) -> bool:
        """In scope, not excluded, and (when given) for this context."""
        image = refs.parse(ref) if isinstance(ref, str) else ref
        if not self.applies_in(context):
            return False
        if self.scope and not matches_any(self.scope, image, digest):
            return False
        return not matches_any(self.exclude, image, digest)

    def scanner_keys(self) -> list[Key]:
        """Public keys loaded from PEM files in ``trusted_scanners`` (key ids carry no key)."""
        return [s.key for s in self.trusted_scanners if s.key is not None]

    def summary(self) -> dict[str, Any]:
        """A short description for ``policy list``."""
        return {
            "name": self.name,
            "action": self.action.name,
            "severity": self.severity.name if self.severity is not None else None,
            "scope": [g.text for g in self.scope],
            "exclude": [g.text for g in self.exclude],
            "require_signed": self.requires_signed,
            "require_scan": self.require_scan,
            "file": str(self.source) if self.source else None,
        }
