"""One registry client per host for a whole process: config parsed once; connections, tokens and
credential look-ups reused across images."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from trustkit.config import Settings
from trustkit.registry.config import RegistriesConfig, load_registries_config

if TYPE_CHECKING:
    from trustkit.registry.client import RegistryClient


class RegistryPool:
    def __init__(
        self,
        settings: Settings,
        *,
        registries: RegistriesConfig | None = None,
        max_connections_per_host: int | None = None,
    ) -> None:
        self.settings = settings
        self._config = registries
        # one client per host, so its connection limit bounds the exchanges a host holds at once
        # (a hanging or dripping registry holds no more); None: the client's default
        self._max_connections = max_connections_per_host
        self._clients: dict[tuple[str, str | None], RegistryClient] = {}
        self._lock = threading.Lock()

    @property
    def config(self) -> RegistriesConfig:
        """``registries.json``, parsed on first use and kept for the process."""
        with self._lock:
            if self._config is None:
                self._config = load_registries_config(self.settings)
            return self._config

    def client(self, host: str, *, scheme: str | None = None) -> RegistryClient:
        """The shared client for ``host`` (and a forced scheme, for mirrors given as URLs)."""
        from trustkit.registry.client import RegistryClient

        config = self.config
        with self._lock:
            key = (host, scheme)
            client = self._clients.get(key)
            if client is None:
                limits = (
                    {}
                    if self._max_connections is None
                    else {"max_connections": self._max_connections}
                )
                client = RegistryClient(
                    self.settings, host, registries=config, scheme=scheme, **limits
                )
                self._clients[key] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
