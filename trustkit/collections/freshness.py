"""Freshness made visible: expiry dates per role, a warning when verified trust data is about to
expire, and renewal of every collection this machine looks after that expires within a window.

A collection nobody renews stops verifying when its timestamp expires (14 days by default):
that refusal is TUF's freeze-attack protection working, so the fix is always a renewal by
whoever holds the snapshot and timestamp keys (``trustkit trust renew REPO``, or a CronJob).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import unquote

from trustkit.collections.engine import renew
from trustkit.collections.expiry import (
    TrustExpiringWarning,
    iso,
    parse_duration,
    renew_hint,
    warn_if_expiring,
)
from trustkit.collections.model import ROOT, SNAPSHOT, TARGETS, TIMESTAMP
from trustkit.collections.repository import Collection, local_keyids
from trustkit.config import Settings
from trustkit.errors import KeyStoreError, TrustkitError, UnknownRepositoryError
from trustkit.services import Services, as_services

#: collections one ``renew --expiring-within`` run considers at most (each is read and verified)
MAX_COLLECTIONS = 10_000

__all__ = [  # the expiry helpers are re-exported: callers need one module
    "MAX_COLLECTIONS",
    "RenewalReport",
    "TrustExpiringWarning",
    "expiry_dates",
    "iso",
    "known_collections",
    "parse_duration",
    "renew_expiring",
    "renew_hint",
    "warn_if_expiring",
]


def expiry_dates(settings: Settings | Services, gun: str) -> dict[str, datetime]:
    """Each role's expiry in ``gun``'s published collection, from metadata whose signatures are
    verified but whose expiry is not enforced: it must answer for expired data too."""
    services = as_services(settings)
    collection = Collection.load(services.store, gun)
    if collection is None:
        raise UnknownRepositoryError(f"no trust data for {gun}")
    return _dates_of(collection)


def _dates_of(collection: Collection) -> dict[str, datetime]:
    dates = {
        ROOT: collection.root.signed.expires,
        TARGETS: collection.targets.signed.expires,
        SNAPSHOT: collection.snapshot.signed.expires,
        TIMESTAMP: collection.timestamp.signed.expires,
    }
    for role in sorted(collection.delegated_roles()):
        md = collection.delegated(role)
        if md is not None:
            dates[role] = md.signed.expires
    return dates


def known_collections(settings: Settings | Services) -> list[str]:
    """The collections this machine looks after: those its key store holds keys for, and those
    its client has verified (the cache). Stores cannot be enumerated (a registry has no list of
    every repository), so this is what ``renew --expiring-within`` walks."""
    services = as_services(settings)
    found = {r.gun for r in services.keys.records() if r.gun}
    cache = services.settings.client_cache_dir
    if cache.is_dir():
        for entry in sorted(cache.iterdir())[:MAX_COLLECTIONS]:
            if entry.is_dir() and "~" not in entry.name:  # "~": a long name kept as a hash
                found.add(unquote(entry.name))
    return sorted(found)[:MAX_COLLECTIONS]


@dataclass
class RenewalReport:
    renewed: dict[str, list[str]] = field(default_factory=dict)  # gun -> roles renewed
    fresh: list[str] = field(default_factory=list)  # nothing expires within the window
    #: found, not named, and not renewable with this key store (someone else's collection)
    not_ours: dict[str, KeyStoreError] = field(default_factory=dict)
    failed: dict[str, TrustkitError] = field(default_factory=dict)


def renew_expiring(
    settings: Settings | Services,
    within: timedelta,
    guns: Iterable[str] | None = None,
) -> RenewalReport:
    """Renew every role that expires within ``within`` in each collection of ``guns`` (default:
    ``known_collections``, where one whose keys are not here is reported in ``not_ours``, not as
    a failure). Roles whose keys this key store lacks are left alone; snapshot and timestamp are
    renewed with any change. One collection's failure does not stop the others."""
    services = as_services(settings)
    now = services.clock()
    report = RenewalReport()
    named = guns is not None
    for gun in guns if guns is not None else known_collections(services):
        try:
            collection = Collection.load(services.store, gun)
            if collection is None:
                continue  # in the cache or key store only: nothing published to renew
            due = [role for role, when in _dates_of(collection).items() if when - now <= within]
            if not due:
                report.fresh.append(gun)
                continue
            extra = [
                role
                for role in due
                if role not in (SNAPSHOT, TIMESTAMP)
                and local_keyids(services.keys, collection.keyids_of(role))
            ]
            report.renewed[gun] = renew(services, gun, extra)
        except KeyStoreError as exc:
            # a collection this machine only verifies is not its to renew, unless named
            if named:
                report.failed[gun] = exc
            else:
                report.not_ours[gun] = exc
        except TrustkitError as exc:
            report.failed[gun] = exc
    return report
