"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, and the Bearer token flow.

Tokens are cached per scope set until shortly before they expire, so a copy of many blobs asks the
token server once per repository and action set.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
TOKEN_SAFETY_MARGIN = 10.0
DEFAULT_TOKEN_LIFETIME = 60.0


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer" (lower case)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> list[str]:
        scope = self.params.get("scope")
        return scope.split(" ") if scope else []


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` or ``Basic realm="..."``."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "bearer"):
        return None
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(rest[:4096]):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return Challenge(scheme, params)


def repository_scope(repo_path: str, *actions: str) -> str:
    return f"repository:{repo_path}:{','.join(actions)}"


def scope_key(scopes: list[str] | tuple[str, ...]) -> str:
    return " ".join(sorted(set(scopes)))


@dataclass
class TokenCache:
    """Bearer tokens by scope set, each with its expiry (monotonic clock)."""

    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        found = self._tokens.get(key)
        if found is None:
            return None
        token, expires = found
        if time.monotonic() >= expires:
            del self._tokens[key]
            return None
        return token

    def put(self, key: str, token: str, lifetime: float | None) -> None:
        life = lifetime if lifetime and lifetime > 0 else DEFAULT_TOKEN_LIFETIME
        self._tokens[key] = (token, time.monotonic() + max(life - TOKEN_SAFETY_MARGIN, 1.0))

    def clear(self) -> None:
        self._tokens.clear()
