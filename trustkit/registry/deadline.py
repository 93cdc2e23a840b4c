"""Overall deadlines for registry exchanges, however slowly a registry sends its bytes.

httpx's timeouts are per socket operation: a registry that drips one byte every few seconds never
trips a 30 s read timeout, on the headers or on the body, and holds the calling thread for as long
as it likes. Here every socket operation of a registry connection (connect, TLS, write, read, and
the wait for a free pooled connection) is given only what is left of the exchange's overall
deadline:

- an exchange (one request and its answer) must start answering within ``exchange_seconds`` (plus
  the time its request body takes at ``MIN_BYTES_PER_SECOND``) and then deliver its body at
  ``MIN_BYTES_PER_SECOND`` on average: large blobs on a slow but honest link still arrive, in
  either direction; a drip does not;
- ``deadline_at(t)`` sets an ambient deadline for every exchange in the block (the webhook's answer
  is due at ``t``): work whose result nobody waits for any more stops at ``t`` instead of holding a
  worker thread.

The caps are applied in a network backend wrapped around httpcore's, so they bound the reads httpx
makes while parsing headers, not only the body chunks we iterate.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
import typing
from collections.abc import Iterator

import httpcore
import httpx

#: after the first ``exchange_seconds``, a body must keep arriving at this average rate
MIN_BYTES_PER_SECOND = 64 * 1024

#: what one read of a plain TCP connection asks the kernel for. httpcore asks 64 KiB, and each
#: read then costs a pass through h11, httpcore, httpx and the deadline checks below: on a 100 MiB
#: pull those per-read passes held the GIL for about as long as hashing and writing the bytes.
#: Reading up to 1 MiB at once takes ~16x fewer passes (the pull's CPU about halves); a read is
#: still bounded (by this size) and still capped by the exchange's deadline. TLS streams keep
#: httpcore's size: one TLS read returns at most one 16 KiB record whatever is asked.
TCP_READ_BYTES = 1024 * 1024

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "trustkit_registry_deadline", default=None
)


@contextlib.contextmanager
def deadline_at(at: float) -> Iterator[None]:
    """Every registry exchange in this block ends by ``at`` (``time.monotonic()``), or sooner."""
    current = _deadline.get()
    token = _deadline.set(at if current is None else min(at, current))
    try:
        yield
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    return _deadline.get()


def _remaining(timeout: float | None) -> float | None:
    """``timeout`` capped by what is left of the deadline; past it, a timeout now."""
    at = _deadline.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the registry exchange ran past its overall deadline")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, *, read_bytes: int = 0) -> None:
        self._inner = inner
        self._read_bytes = read_bytes  # at least this much per read (0: what httpcore asks)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max(max_bytes, self._read_bytes), _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _remaining(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream, read_bytes=TCP_READ_BYTES)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, _remaining(timeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineBody(httpx.SyncByteStream):
    """A response body read under its exchange's deadline, extended only by bytes that arrive."""

    def __init__(self, inner: httpx.SyncByteStream, started: float, allowance: float) -> None:
        self._inner = inner
        self._started = started
        self._allowance = allowance

    def _at(self, received: int) -> float:
        return self._started + self._allowance + received / MIN_BYTES_PER_SECOND

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        chunks = iter(self._inner)
        while True:
            with deadline_at(self._at(received)):
                try:
                    _remaining(None)
                    chunk = next(chunks)
                except StopIteration:
                    return
                except httpcore.TimeoutException as exc:
                    raise httpx.ReadTimeout(str(exc)) from exc
            received += len(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class DeadlineTransport(httpx.BaseTransport):
    """``httpx.HTTPTransport`` with an overall deadline per exchange (see the module docstring) and
    at most ``max_connections`` connections: with one client per registry host, that bounds how
    many exchanges one host holds at once; the others wait, but never past their deadline."""

    def __init__(
        self, *, verify: ssl.SSLContext | bool, exchange_seconds: float, max_connections: int
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._inner = httpx.HTTPTransport(verify=verify, limits=limits)
        pool = self._inner._pool  # httpx builds the httpcore pool without a backend parameter
        if not isinstance(getattr(pool, "_network_backend", None), httpcore.NetworkBackend):
            raise RuntimeError("httpcore's pool no longer exposes its network backend")
        pool._network_backend = _DeadlineBackend(pool._network_backend)
        self.exchange_seconds = exchange_seconds
        self.max_connections = max_connections

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        # an upload is allowed the same minimum rate as a download (a 256 MiB monolithic blob)
        length = request.headers.get("Content-Length", "")
        sending = int(length) / MIN_BYTES_PER_SECOND if length.isdigit() else 0.0
        allowance = self.exchange_seconds + sending
        with deadline_at(started + allowance):
            # the wait for a free connection is no socket operation: cap it here
            timeouts = dict(request.extensions.get("timeout") or {})
            try:
                timeouts["pool"] = _remaining(timeouts.get("pool"))
            except httpcore.TimeoutException as exc:  # past the deadline before even starting
                raise httpx.ReadTimeout(str(exc), request=request) from exc
            request.extensions = {**request.extensions, "timeout": timeouts}
            response = self._inner.handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        body = _DeadlineBody(response.stream, started, allowance)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=body,
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()
