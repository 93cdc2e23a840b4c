"""Keys named in a policy: a key id (64 hex digits) or a PEM public key file (relative to the
policy file). Read while the policy is parsed, never during evaluation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustkit._fs import read_protected
from trustkit.errors import BadInputError
from trustkit.policy.rules.base import ParseContext

MAX_KEY_FILE = 64 * 1024
_KEYID_RE = re.compile(r"\A[0-9a-f]{64}\Z")

#: the schema of a key reference in a policy file
KEY_REFERENCE_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 4096}


@dataclass(frozen=True)
class NamedKey:
    text: str  # as written: a key id or a PEM path
    keyid: str
    key: Any = None  # securesystemslib Key when loaded from a PEM file


def load_keys(values: list[str], at: ParseContext, what: str) -> list[NamedKey]:
    """Every key of ``values``; a problem for each that is neither a key id nor a key file."""
    out: list[NamedKey] = []
    for i, text in enumerate(values):
        if _KEYID_RE.match(text):
            out.append(NamedKey(text=text, keyid=text))
            continue
        from trustkit.keys.pem import load_public_key  # cryptography: only when needed

        file = Path(text).expanduser()
        if not file.is_absolute() and at.source is not None:
            file = at.source.parent / file
        try:
            # read_protected: a key file anyone else could write would trust their scans
            key = load_public_key(read_protected(file, MAX_KEY_FILE, what=what), what=str(file))
        except FileNotFoundError:
            at.problem(
                (i,),
                f"{at.where(i)}: {text!r} is neither a key id (64 hex digits) "
                f"nor an existing PEM public key file ({file})",
            )
            continue
        except (BadInputError, OSError) as exc:
            at.problem((i,), f"{at.where(i)}: {exc}")
            continue
        out.append(NamedKey(text=text, keyid=key.keyid, key=key))
    return out
