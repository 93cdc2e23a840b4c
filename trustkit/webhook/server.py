"""Run the webhook on uvicorn over TLS."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from trustkit.webhook.checker import ImageChecker
from trustkit.webhook.config import WebhookConfig

if TYPE_CHECKING:
    import uvicorn


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
        # the API server's connections are long-lived; keep them open between reviews
        timeout_keep_alive=30,
    )
    return uvicorn.Server(uv_config)


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
