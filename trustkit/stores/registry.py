"""Stores found by URL scheme: ``file:///path``, ``memory://NAME``, ``registry://`` (each
image's own registry) and ``oci://HOST/PREFIX`` (one registry); the Notary store registers here
too, so callers name a store by URL and never import a backend themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trustkit.errors import BadInputError
from trustkit.stores.interface import MetadataStore

if TYPE_CHECKING:
    from trustkit.services import Services

StoreOpener = Callable[[str], MetadataStore]
#: an opener that needs the process's collaborators (a registry store uses its registry pool);
#: it gets None when a caller opens a store without Services
ServicesStoreOpener = Callable[[str, "Services | None"], MetadataStore]

_OPENERS: dict[str, StoreOpener] = {}
_SERVICE_OPENERS: dict[str, ServicesStoreOpener] = {}


def register_store(scheme: str, opener: StoreOpener) -> None:
    """Make ``scheme://...`` URLs open with ``opener`` (the URL is passed whole)."""
    _OPENERS[scheme] = opener


def register_services_store(scheme: str, opener: ServicesStoreOpener) -> None:
    """Like ``register_store``, for an opener that also receives the process's Services."""
    _SERVICE_OPENERS[scheme] = opener


def _open_file(url: str) -> MetadataStore:
    from trustkit.stores.local import LocalDirStore

    return LocalDirStore.from_url(url)


def _open_memory(url: str) -> MetadataStore:
    from trustkit.stores.memory import open_memory_store

    return open_memory_store(url)


def _open_registry(url: str, services: Services | None) -> MetadataStore:
    from trustkit.stores.oci import open_registry_store

    return open_registry_store(url, services, lambda other: open_store(other, services=services))


def _open_oci(url: str, services: Services | None) -> MetadataStore:
    from trustkit.stores.oci import open_oci_store

    return open_oci_store(url, services)


def _open_notary(url: str, services: Services | None) -> MetadataStore:
    from trustkit.stores.notary import open_notary_store

    return open_notary_store(url, services)


register_store("file", _open_file)
register_store("memory", _open_memory)
register_services_store("registry", _open_registry)
register_services_store("oci", _open_oci)
register_services_store("https", _open_notary)  # a notary-server
register_services_store("http", _open_notary)  # a notary-server on loopback


def open_store(url: str, *, services: Services | None = None) -> MetadataStore:
    """The store a URL names; an unknown scheme is bad input naming the schemes there are.

    ``services``: the process's collaborators, for stores that need them (the registry
    stores use its registry pool; without it they make a pool of their own)."""
    scheme, sep, _ = url.partition("://")
    service_opener = _SERVICE_OPENERS.get(scheme.lower()) if sep else None
    if service_opener is not None:
        return service_opener(url, services)
    opener = _OPENERS.get(scheme.lower()) if sep else None
    if opener is None:
        known = ", ".join(f"{s}://" for s in sorted({*_OPENERS, *_SERVICE_OPENERS}))
        raise BadInputError(
            f"trust server {url!r} is not supported yet",
            hint=f"unset SERVIN_CONTENT_TRUST_SERVER or use one of: {known}",
        )
    return opener(url)
