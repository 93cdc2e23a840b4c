"""Stores found by URL scheme: ``file:///path`` and ``memory://NAME`` today; the registry and
Notary stores register here too, so callers name a store by URL and never import a backend
themselves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trustkit.errors import BadInputError
from trustkit.stores.interface import MetadataStore

StoreOpener = Callable[[str], MetadataStore]

_OPENERS: dict[str, StoreOpener] = {}


def register_store(scheme: str, opener: StoreOpener) -> None:
    """Make ``scheme://...`` URLs open with ``opener`` (the URL is passed whole)."""
    _OPENERS[scheme] = opener


def _open_file(url: str) -> MetadataStore:
    from trustkit.stores.local import LocalDirStore

    return LocalDirStore(Path(url[len("file://") :]))


def _open_memory(url: str) -> MetadataStore:
    from trustkit.stores.memory import open_memory_store

    return open_memory_store(url)


register_store("file", _open_file)
register_store("memory", _open_memory)


def open_store(url: str) -> MetadataStore:
    """The store a URL names; an unknown scheme is bad input naming the schemes there are."""
    scheme, sep, _ = url.partition("://")
    opener = _OPENERS.get(scheme.lower()) if sep else None
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted(_OPENERS))
        raise BadInputError(
            f"trust server {url!r} is not supported yet",
            hint=f"unset SERVIN_CONTENT_TRUST_SERVER or use one of: {known}",
        )
    return opener(url)
