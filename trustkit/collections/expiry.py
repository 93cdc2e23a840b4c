"""Expiry helpers with no dependency on the engine (the client warns through them)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import datetime, timedelta

from trustkit.errors import BadInputError

#: verified trust data expiring sooner than this draws a warning from any command
WARNING_WINDOW = timedelta(days=3)
_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


class TrustExpiringWarning(UserWarning):
    """Verified trust data expires within WARNING_WINDOW (printed as one line by the CLI)."""


def renew_hint(gun: str) -> str:
    return f"trustkit trust renew {gun}"


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def warn_if_expiring(gun: str, dates: Mapping[str, datetime], now: datetime) -> None:
    """One TrustExpiringWarning naming the first role to expire, when it is within the window."""
    if not dates:
        return
    role, expires = min(dates.items(), key=lambda item: item[1])
    if expires - now > WARNING_WINDOW:
        return
    left = max(timedelta(0), expires - now)
    minutes = int(left.total_seconds() // 60)
    hours = minutes // 60
    if hours >= 24:
        when = f"in {hours // 24} d {hours % 24} h"
    else:
        when = f"in {hours} h" if hours else f"in {minutes} min"
    warnings.warn(
        TrustExpiringWarning(
            f"trust data of {gun} expires {when} ({role} on {iso(expires)}): "
            f"renew it with '{renew_hint(gun)}'"
        ),
        stacklevel=2,
    )


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``3d``, ``2w`` → timedelta (BadInputError otherwise)."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit not in _DURATION_UNITS or not value.isdigit() or not 0 < int(value) <= 100_000:
        raise BadInputError(f"{text!r} is not a duration like 30m, 12h, 3d or 2w")
    return timedelta(seconds=int(value) * _DURATION_UNITS[unit])
