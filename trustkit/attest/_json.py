"""Defensive accessors for untrusted JSON: wrong types become ReportFormatError, never a crash."""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from trustkit._json import decode_untrusted_json
from trustkit.errors import InputTooLargeError, ReportFormatError


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many small objects next to a large JSON tree.

    Neither the tree nor the findings have cycles, and each collection would rescan the whole
    tree: for a 10,000-finding report that is half of the normalising time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_bounded_json(data: bytes, *, limit: int, what: str) -> Any:
    """``json.loads`` with a size bound; every failure is a one-line ReportFormatError."""
    if len(data) > limit:
        raise InputTooLargeError(f"{what} is {len(data)} bytes, over the {limit}-byte limit")
    return decode_untrusted_json(data, what=what, error=ReportFormatError)


def get_dict(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ReportFormatError(f"{where}: {key!r} must be an object")
    return value


def get_list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportFormatError(f"{where}: {key!r} must be a list")
    return value


def get_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    """A string field; missing, null and "" all read as None."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ReportFormatError(f"{where}: {key!r} must be a string")
    return value


def need_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = get_str(obj, key, where)
    if value is None:
        raise ReportFormatError(f"{where}: {key!r} is missing")
    return value


def get_number(obj: dict[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    kind = type(value)
    if kind is float or kind is int:  # the common case, kept cheap: called per CVSS score
        number = float(value)  # type: ignore[arg-type]
    elif value is None or value == "":
        return None
    elif kind is str:
        try:
            number = float(value)
        except ValueError:
            raise ReportFormatError(f"{where}: {key!r} must be a number") from None
    else:
        raise ReportFormatError(f"{where}: {key!r} must be a number")
    if not math.isfinite(number):
        raise ReportFormatError(f"{where}: {key!r} must be a finite number")
    return number


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportFormatError(f"{where} must be an object")
    return value


def str_list(values: list[Any], where: str) -> tuple[str, ...]:
    out = []
    for value in values:
        if not isinstance(value, str):
            raise ReportFormatError(f"{where}: expected a list of strings")
        if value:
            out.append(value)
    return tuple(out)


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 with up to nanoseconds (Go writes 9 digits); None when absent or unparseable.

    Timestamps in reports are informational, so a strange one is dropped rather than fatal.
    """
    if not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if "." in value:  # trim fractional seconds to microseconds for fromisoformat
        head, _, rest = value.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year <= 1:  # Go's zero time means "not set"
        return None
    return parsed


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with ``Z`` as Go's time.Time marshals it: whole seconds when round,
    microseconds otherwise (two scans in one second must still be ordered)."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def split_repo_digests(values: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``repo@sha256:...`` entries -> (digests, repositories), each without duplicates."""
    digests: list[str] = []
    repositories: list[str] = []
    for value in values:
        repository, at, digest = value.rpartition("@")
        if not at:
            continue
        if digest not in digests:
            digests.append(digest)
        if repository and repository not in repositories:
            repositories.append(repository)
    return tuple(digests), tuple(repositories)


def with_artifact_repository(
    repositories: tuple[str, ...], artifact: str | None
) -> tuple[str, ...]:
    """``repositories`` plus the repository of an image-reference-like artifact name."""
    if not artifact or "://" in artifact or artifact.startswith(("/", ".")):
        return repositories  # a path or URL (filesystem, tarball, repository scans)
    name = artifact.partition("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.partition(":")[0]
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return repositories
    return repositories if name in repositories else (*repositories, name)
