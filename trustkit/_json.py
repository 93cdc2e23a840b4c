"""Untrusted JSON in, a dict out, or one clear error: the one place that knows how.

``json.loads`` raises ``ValueError`` for bad syntax, ``UnicodeDecodeError`` for bad bytes and
``RecursionError`` for deep nesting (an attack on the interpreter's stack, not a syntax error);
callers want a single one-line ``TrustkitError`` naming the input either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from trustkit.errors import BadInputError, InputTooLargeError, TrustkitError


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
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise error(f"{what} is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise error(f"{what} must be a JSON object")
    return doc
