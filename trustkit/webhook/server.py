"""Run the webhook on uvicorn over TLS, guarded against clients that never finish a request.

uvicorn closes idle kept-alive connections, but not one whose request never completes: a client
that opens a connection and sends nothing (no TLS handshake: asyncio waits 60 s), or sends its
headers a byte at a time, holds a descriptor for as long as it likes; a few hundred of them starve
the process of descriptors and ``/healthz`` goes unanswered. So:

- the TLS handshake must finish within ``request_start_seconds``;
- a request's headers must be complete within ``request_start_seconds`` of its connection opening
  (or of its first byte on a kept-alive connection), else the connection is closed;
- the body is read within the review's deadline (``app.py``; 408 and the connection closed);
- past ``max_connections`` open connections a new one is closed at once;
- ``limit_concurrency`` answers 503 rather than queueing requests without end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit.webhook.checker import ImageChecker
from trustkit.webhook.config import WebhookConfig

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("trustkit.webhook")


def build_server(
    config: WebhookConfig,
    *,
    cert: Path,
    key: Path,
    host: str = "127.0.0.1",
    port: int = 8443,
    checker: ImageChecker | None = None,
    log_level: str = "info",
    tls_interval: float = 2.0,
) -> uvicorn.Server:
    """A uvicorn Server whose SSL context is reloaded when ``cert`` or ``key`` change."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from trustkit.webhook.app import create_app
    from trustkit.webhook.tls import ReloadingTLS

    tls = ReloadingTLS(cert, key, interval=tls_interval)
    app = create_app(config, checker, tls=tls)

    def context_factory(_: uvicorn.Config, __: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return tls.context

    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_context_factory=context_factory,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        server_header=False,
        # nothing here reads the client's address: no forwarded-header rewriting per request
        proxy_headers=False,
        # the API server's connections are long-lived; keep them open between reviews
        timeout_keep_alive=30,
        http=guarded_protocol(AutoHTTPProtocol, config),
        # requests being handled at once; past it 503 (the API server retries or fails closed)
        limit_concurrency=config.max_connections,
        h11_max_incomplete_event_size=64 * 1024,  # request line and headers (h11 only)
    )
    return _server_class()(uv_config, handshake_seconds=config.request_start_seconds)


def guarded_protocol(base: type[asyncio.Protocol], config: WebhookConfig) -> type[asyncio.Protocol]:
    """``base`` (uvicorn's h11 or httptools protocol) with a request-start timeout and a cap on
    open connections. Relies on what both share: ``connections``, ``cycle``, ``transport``."""
    start_seconds = config.request_start_seconds
    max_connections = config.max_connections

    class GuardedProtocol(base):  # type: ignore[valid-type, misc]
        _start_timer: asyncio.TimerHandle | None = None
        _waiting_since: Any = None  # the cycle current when the timer was armed

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(CoalescingTransport(transport))
            if len(self.connections) > max_connections:
                log.warning("over %d open connections: closing a new one", max_connections)
                transport.abort()  # type: ignore[attr-defined]
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            # the first bytes of a new request on a kept-alive connection start its clock
            if self._start_timer is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._waiting_since = self.cycle
            self._start_timer = self.loop.call_later(start_seconds, self._request_start_expired)

        def _disarm(self) -> None:
            if self._start_timer is not None:
                self._start_timer.cancel()
                self._start_timer = None

        def _request_start_expired(self) -> None:
            self._start_timer = None
            if self.cycle is self._waiting_since and not self.transport.is_closing():
                # no request's headers completed in time: a slow or half-open client
                self.transport.abort()

    GuardedProtocol.__name__ = GuardedProtocol.__qualname__ = f"Guarded{base.__name__}"
    return GuardedProtocol


class CoalescingTransport:
    """A transport whose writes made in one turn of the event loop leave as one write.

    uvicorn writes a response's status line and headers, then its body: over TLS each write is
    its own record and its own send, so every answer cost two sends and gave the client two
    records to decrypt. Buffered writes are flushed at the next turn of the loop, and before a
    close or EOF, so nothing waits longer than the callback that wrote it.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self._transport: Any = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chunk = data if type(data) is bytes else bytes(data)  # a caller may reuse its buffer
        if self._pending is None:
            self._pending = [chunk]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(chunk)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = sum(map(len, self._pending)) if self._pending else 0
        return int(self._transport.get_write_buffer_size()) + held

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:  # pause_reading, set_protocol, ...: as they are
        return getattr(self._transport, name)


@functools.cache
def _server_class() -> Callable[..., uvicorn.Server]:
    import uvicorn

    class GuardedServer(uvicorn.Server):
        """uvicorn's Server, listening with a TLS handshake timeout (uvicorn passes none, and
        asyncio's default is 60 s)."""

        def __init__(self, config: uvicorn.Config, *, handshake_seconds: float) -> None:
            super().__init__(config)
            self.handshake_seconds = handshake_seconds

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            config = self.config
            if sockets is None:
                sockets = [bind(config.host, config.port)]
            # lifespan and state as usual; the listeners are created here, with the timeout
            await super().startup(sockets=[])
            if self.should_exit:
                return

            def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
                return config.http_protocol_class(  # type: ignore[call-arg]
                    config=config,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                    _loop=_loop,
                )

            loop = asyncio.get_running_loop()
            for sock in sockets:
                server = await loop.create_server(
                    create_protocol,
                    sock=sock,
                    ssl=config.ssl,
                    backlog=config.backlog,
                    ssl_handshake_timeout=self.handshake_seconds if config.ssl else None,
                )
                self.servers.append(server)
            log.info("webhook listening on %s", ", ".join(str(s.getsockname()) for s in sockets))

    return GuardedServer


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), so callers know the port before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on such sockets, and without
    # it every response waits 40 ms for a delayed ACK (headers and body are separate writes)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock
