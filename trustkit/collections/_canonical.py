"""OLPC canonical JSON (what TUF signs) at C speed, byte for byte securesystemslib's.

securesystemslib's ``encode_canonical`` is pure Python and most of a cold verify (issue 11).
For the metadata TUF handles, the standard library's C encoder with sorted keys, no spaces and
no ASCII escaping produces the same bytes, except where the two disagree; each such input is
handed to securesystemslib itself:

- control characters: json escapes them, canonical JSON does not, so json's escapes of them
  are undone in the output (``\\"`` and ``\\\\`` are the same in both);
- anything but exact str/int/bool/None leaves, lists, tuples and dicts with string keys:
  floats (canonical JSON refuses them), non-string keys (json would quote them), subclasses
  (whose ``str`` and ``repr`` may differ).

``tests/test_canonical.py`` checks byte identity on generated JSON values, the TUF metadata
trustkit writes and every fallback case. ``install()`` points python-tuf's serializer at it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from securesystemslib.formats import encode_canonical as _slow

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


_LEAVES = frozenset({str, int, bool, type(None)})
_MAX_NODES = 50_000_000


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only exact str/int/bool/None leaves, lists, tuples and dicts
    with string keys: the values on which both encoders agree (no floats, no subclasses
    whose ``str`` and ``repr`` differ). A walk that builds no strings; str and int leaves,
    nearly all of metadata, are passed over without being stacked."""
    stack = [value]
    budget = _MAX_NODES  # a structure with a cycle never ends: securesystemslib refuses it
    while stack:
        budget -= 1
        if budget < 0:
            return False
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    return False
                child_kind = type(child)
                if child_kind is not str and child_kind is not int:
                    stack.append(child)
        elif kind is list or kind is tuple:
            for child in item:
                child_kind = type(child)
                if child_kind is not str and child_kind is not int:
                    stack.append(child)
        elif kind not in _LEAVES:
            return False
    return True


def encode_canonical(value: Any) -> str:
    """``securesystemslib.formats.encode_canonical(value)``, faster for metadata."""
    if not _plain(value):
        return str(_slow(value))
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError):  # e.g. a reference cycle: let securesystemslib say so
        return str(_slow(value))
    if "\\" in text:
        # json escapes control characters, canonical JSON writes them as they are; both
        # escape '"' and '\\' alike. Escapes are read left to right, so "\\\\n" stays.
        text = _ESCAPE.sub(_canonical_escape, text)
    return text


_ESCAPE = re.compile(r'\\(?:(["\\])|([bfnrt])|u([0-9a-f]{4}))')
_CONTROL = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _canonical_escape(match: re.Match[str]) -> str:
    kept, control, code = match.groups()
    if kept is not None:
        return match.group(0)
    if control is not None:
        return _CONTROL[control]
    return chr(int(code, 16))


#: the objects serialised in the current ``reused_encodings`` scope: id -> (object, bytes)
_REUSED: ContextVar[dict[int, tuple[object, bytes]] | None] = ContextVar(
    "trustkit_canonical_reused", default=None
)


@contextmanager
def reused_encodings() -> Iterator[None]:
    """Within this scope, python-tuf serialises each ``Signed`` object once: ngclient encodes
    every role it loads twice (to verify it, then to return it; a 46 KB snapshot costs ~1.5 ms
    each time). Only for code that never changes a ``Signed`` it already serialised, as the
    client's verification (ngclient's trusted set is read-only); writers never enter it."""
    token = _REUSED.set({})
    try:
        yield
    finally:
        _REUSED.reset(token)


def install() -> None:
    """Make python-tuf sign and verify with this encoder (idempotent)."""
    import tuf.api.serialization.json as tuf_json

    tuf_json.encode_canonical = encode_canonical  # type: ignore[attr-defined,assignment]
    serializer = tuf_json.CanonicalJSONSerializer
    if getattr(serializer.serialize, "_trustkit", False):
        return
    serialize = serializer.serialize

    def reusing(self: Any, signed_obj: Any) -> bytes:
        reused = _REUSED.get()
        if reused is None:
            return serialize(self, signed_obj)
        known = reused.get(id(signed_obj))
        if known is not None and known[0] is signed_obj:  # the entry keeps the id unreused
            return known[1]
        data = serialize(self, signed_obj)
        reused[id(signed_obj)] = (signed_obj, data)
        return data

    reusing._trustkit = True  # type: ignore[attr-defined]
    serializer.serialize = reusing  # type: ignore[method-assign]
