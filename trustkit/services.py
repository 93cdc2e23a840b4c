"""The composition root's product: one set of collaborators per process.

Entry points (CLI, hooks, hook server, gate, webhook) build one ``Services`` from ``Settings``
and hand it to operations, which take their collaborators from it instead of constructing them
from ``Settings`` themselves: the trust-data store(s), the key store, the registry client pool,
the clock and the bounds. Tests inject any of them (an in-memory store, a fixed clock).

Every collaborator is built lazily on first use, so a command that never signs never imports the
key store, and one that never talks to a registry never imports httpx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from trustkit.config import Settings

if TYPE_CHECKING:
    from trustkit.keys import KeyStore
    from trustkit.registry.pool import RegistryPool
    from trustkit.stores.interface import MetadataStore


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Bounds:
    """Size limits for untrusted input, in bytes. One place, so a deployment can tighten them."""

    #: one root / targets / delegated targets metadata file
    metadata: int = 32 * 1024 * 1024
    #: the timestamp (fetched first, before anything says how large the rest may be)
    timestamp: int = 64 * 1024
    #: an image manifest or index
    manifest: int = 4 * 1024 * 1024
    #: every attestation envelope fetched for one image, together
    attestations_per_image: int = 64 * 1024 * 1024


class Services:
    """Collaborators for one process (or one test). Build once; pass everywhere."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
        bounds: Bounds | None = None,
        store: MetadataStore | None = None,
        keys: KeyStore | None = None,
        registries: RegistryPool | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.bounds = bounds or Bounds()
        if store is not None:
            self.__dict__["store"] = store
        if keys is not None:
            self.__dict__["keys"] = keys
        if registries is not None:
            self.__dict__["registries"] = registries

    @cached_property
    def store(self) -> MetadataStore:
        """The trust-data store named by the settings (``SERVIN_CONTENT_TRUST_SERVER``), with
        the per-registry ``trust_server`` overrides of ``registries.json``."""
        from trustkit.stores import open_store

        store = open_store(self.settings.trust_store_url, services=self)
        if (
            "registries" not in self.__dict__
            and not self.settings.effective_registries_config.exists()
        ):
            return store  # no registries.json names a trust server: its parser stays unloaded
        if not any(entry.trust_server for entry in self.registries.config.registries.values()):
            return store  # nothing to route: the registry store's module stays unloaded
        from trustkit.stores.oci import with_registry_overrides

        return with_registry_overrides(
            store,
            self,
            lambda url: open_store(url, services=self),
        )

    def store_at(self, url: str) -> MetadataStore:
        """Another store, by URL (``trust migrate`` holds two at once)."""
        from trustkit.stores import open_store

        return open_store(url, services=self)

    @cached_property
    def keys(self) -> KeyStore:
        from trustkit.keys import KeyStore

        return KeyStore(self.settings)

    @cached_property
    def registries(self) -> RegistryPool:
        from trustkit.registry.pool import RegistryPool

        return RegistryPool(self.settings)

    def close(self) -> None:
        pool = self.__dict__.get("registries")
        if pool is not None:
            pool.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_services(value: Settings | Services) -> Services:
    """Transitional: operations still called with bare ``Settings`` get fresh collaborators.

    Every entry point passes ``Services``; this keeps library callers that pass ``Settings``
    working, with exactly the old behaviour (a new store and key store per call).
    """
    return value if isinstance(value, Services) else Services(value)
