"""Untrusted JSON in, a value out, or one clear error: the one place that knows how.

``json.loads`` raises ``JSONDecodeError`` for bad syntax, ``UnicodeDecodeError`` for bad bytes,
a plain ``ValueError`` for an integer past Python's 4,300-digit conversion limit, and
``RecursionError`` for deep nesting (an attack on the interpreter's stack, not a syntax error);
callers want a single one-line ``TrustkitError`` naming the input whichever it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from trustkit.errors import BadInputError, InputTooLargeError, TrustkitError


def decode_untrusted_json(
    data: bytes | str,
    *,
    what: str,
    error: Callable[[str], TrustkitError] = BadInputError,
) -> Any:
    """``json.loads`` where every way untrusted text can fail is ``error(one line)``."""
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise error(f"{what} is not valid JSON: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except ValueError:
        # int() refuses more than sys.get_int_max_str_digits() digits (CVE-2020-10735): the
        # only other ValueError json.loads raises, and no real document has such a number
        raise error(f"{what} is not valid JSON: it holds a number too long to read") from None
    except RecursionError:
        raise error(f"{what} is not valid JSON: nested too deeply") from None


def load_json_object(
    data: bytes | str,
    *,
    what: str,
    limit: int | None = None,
    error: Callable[[str], TrustkitError] = BadInputError,
) -> dict[str, Any]:
    """Parse ``data`` as a JSON object; ``error(message)`` builds the exception for bad input."""
    if limit is not None and len(data) > limit:
        raise InputTooLargeError(f"{what} is larger than the {limit}-byte limit")
    doc = decode_untrusted_json(data, what=what, error=error)
    if not isinstance(doc, dict):
        raise error(f"{what} must be a JSON object")
    return doc
