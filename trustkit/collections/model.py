"""Names, limits and value types of a trusted collection."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from trustkit.config import Settings
from trustkit.errors import BadInputError
from trustkit.stores import interface as _store

ROOT = "root"
TARGETS = "targets"
SNAPSHOT = "snapshot"
TIMESTAMP = "timestamp"
TOP_LEVEL_ROLES = (ROOT, TARGETS, SNAPSHOT, TIMESTAMP)
RELEASES = "targets/releases"
SIGNER_PREFIX = "targets/"
#: docker shows tags signed with the repository (targets) key as signed by this name
REPO_ADMIN = "Repo Admin"

SIGNER_NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]*\Z")
SIGNER_NAME_MAX = 64
RESERVED_SIGNER_NAMES = frozenset({"releases"})
_SHA256_RE = re.compile(r"\Asha256:([0-9a-f]{64})\Z")

# Bounds on every metadata read (bytes), defined where stores read (they fetch ahead with them)
ROOT_MAX_BYTES = _store.ROOT_MAX_BYTES
TIMESTAMP_MAX_BYTES = _store.TIMESTAMP_MAX_BYTES
SNAPSHOT_MAX_BYTES = _store.SNAPSHOT_MAX_BYTES
TARGETS_MAX_BYTES = _store.TARGETS_MAX_BYTES
BIN_MAX_BYTES = _store.BIN_MAX_BYTES
MAX_ROOT_ROTATIONS = 64
MAX_DELEGATIONS = 64


@dataclass(frozen=True)
class Expiries:
    """How long each role's metadata stays valid (Notary's defaults)."""

    root: timedelta = timedelta(days=3650)
    targets: timedelta = timedelta(days=3 * 365)
    snapshot: timedelta = timedelta(days=3 * 365)
    timestamp: timedelta = timedelta(days=14)
    #: delegated roles (targets/releases, targets/<signer>) follow targets by default
    delegation: timedelta | None = None

    def for_role(self, role: str, now: datetime) -> datetime:
        if role == ROOT:
            delta = self.root
        elif role == SNAPSHOT:
            delta = self.snapshot
        elif role == TIMESTAMP:
            delta = self.timestamp
        elif role == TARGETS:
            delta = self.targets
        else:
            delta = self.delegation if self.delegation is not None else self.targets
        # whole seconds: notary-server (Go) breaks on fractional expiry timestamps
        return (now + delta).replace(microsecond=0)


DEFAULT_EXPIRIES = Expiries()

_EXPIRY_UNITS = {
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_EXPIRY_ROLES = ("root", "targets", "snapshot", "timestamp", "delegation")


def parse_expiries(spec: str, *, source: str = "SERVIN_TRUST_EXPIRY") -> Expiries:
    """``"timestamp=7d,snapshot=1y"`` → Expiries; unnamed roles keep Notary's defaults.

    Units: h, d, w, y (365 d). A malformed spec is bad input, never a silent default.
    """
    values: dict[str, timedelta] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        role, sep, text = item.partition("=")
        role, text = role.strip().lower(), text.strip().lower()
        if not sep or role not in _EXPIRY_ROLES:
            roles = ", ".join(_EXPIRY_ROLES)
            raise BadInputError(f"{source}: {item!r} is not ROLE=DURATION, ROLE one of {roles}")
        unit = _EXPIRY_UNITS.get(text[-1:])
        if unit is None or not text[:-1].isdigit() or int(text[:-1]) <= 0:
            raise BadInputError(f"{source}: {text!r} is not a duration like 14d, 12h, 2w or 3y")
        values[role] = unit * int(text[:-1])
    if "timestamp" in values and values["timestamp"] < timedelta(hours=1):
        raise BadInputError(f"{source}: a timestamp must stay valid for at least an hour")
    return Expiries(**values)


def expiries_for(settings: Settings) -> Expiries:
    """The expiries new metadata gets: Notary's defaults, or ``SERVIN_TRUST_EXPIRY``'s."""
    return parse_expiries(settings.trust_expiry) if settings.trust_expiry else DEFAULT_EXPIRIES


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TrustedTarget:
    """A tag whose digest a verified collection vouches for."""

    gun: str
    tag: str
    digest: str  # "sha256:<hex>"
    size: int
    role: str  # the role that vouched: "targets/releases" or "targets"
    signers: tuple[str, ...]

    @property
    def hex_digest(self) -> str:
        return self.digest.split(":", 1)[1]


def signer_role(name: str) -> str:
    return SIGNER_PREFIX + check_signer_name(name)


def signer_name_of(role: str) -> str:
    return role[len(SIGNER_PREFIX) :]


def check_signer_name(name: str) -> str:
    if name in RESERVED_SIGNER_NAMES:
        raise BadInputError(f"signer name {name!r} is reserved")
    if len(name) > SIGNER_NAME_MAX or not SIGNER_NAME_RE.match(name):
        raise BadInputError(
            f"invalid signer name {name!r}: use lowercase letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_digest(digest: str) -> str:
    """The hex part of a ``sha256:<64 hex>`` digest."""
    match = _SHA256_RE.match(digest)
    if not match:
        raise BadInputError(f"invalid digest {digest!r}: expected sha256:<64 lowercase hex>")
    return match.group(1)


def check_size(size: int) -> int:
    if size < 0 or size > 1 << 40:
        raise BadInputError(f"invalid manifest size {size}")
    return size


#: whether the local key store holds a key of the delegated role so named (below its threshold, a
#: change becomes a pending change for co-signers); by name, because a bin's keys live in the
#: role that delegates to it, not in ``targets``
CanSign = Callable[[str], bool]


@dataclass
class SignerRemoval:
    """What removing a signer changed in the delegations."""

    #: keys that left the release roles (held by no remaining signer)
    leaving_keyids: list[str] = field(default_factory=list)
    #: release roles that lost keys, and so must not keep signatures only those keys made
    release_roles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
