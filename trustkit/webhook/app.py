"""The ASGI app: /validate, /mutate, /healthz, /readyz, /metrics (starlette)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from trustkit.errors import internal_error_line
from trustkit.webhook.cache import SingleFlight, VerdictCache
from trustkit.webhook.checker import ImageChecker, PreparedChecker
from trustkit.webhook.config import WebhookConfig
from trustkit.webhook.decide import Decider, Decision
from trustkit.webhook.metrics import Metrics
from trustkit.webhook.review import MalformedReview, parse_review

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    from trustkit.webhook.tls import ReloadingTLS

log = logging.getLogger("trustkit.webhook")
PREPARE_RETRY_SECONDS = 5.0
API_TIMEOUT_MARGIN = 1.0  # answer this long before the API server's own ?timeout= gives up
_TIMEOUT_RE = re.compile(r"\A([0-9]{1,3})s\Z")


class _TooLarge(Exception):
    pass


class WebhookState:
    """Everything the handlers share; exposed as ``app.state.webhook`` for tests and metrics."""

    def __init__(self, config: WebhookConfig, checker: ImageChecker) -> None:
        self.config = config
        self.checker = checker
        self.metrics = Metrics()
        self.cache = VerdictCache(
            ttl=config.cache_ttl_seconds,
            refusal_ttl=config.refusal_ttl_seconds,
            max_entries=config.cache_max_entries,
        )
        self.executor = ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="trustkit-verify"
        )
        self.flights = SingleFlight(self.cache, self.executor, per_lane=config.registry_concurrency)
        self.decider = Decider(config, checker, self.flights, self.cache, self.metrics)
        self.ready = not isinstance(checker, PreparedChecker)
        self.not_ready_reason = "" if self.ready else "loading trust data and policies"
        self.metrics.gauges["trustkit_webhook_cache_entries"] = lambda: float(len(self.cache))
        self.metrics.gauges["trustkit_webhook_verifications_in_flight"] = lambda: float(
            self.flights.in_flight()
        )
        self.metrics.gauges["trustkit_webhook_ready"] = lambda: 1.0 if self.ready else 0.0

    async def prepare(self) -> None:
        """Load the checker's trust data and policies, retrying until it works."""
        if not isinstance(self.checker, PreparedChecker):
            _freeze_loaded()
            return
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self.executor, self.checker.prepare)
            except Exception as exc:
                self.not_ready_reason = f"{type(exc).__name__}: {exc}"
                log.error("webhook not ready: %s", self.not_ready_reason)
                await asyncio.sleep(PREPARE_RETRY_SECONDS)
                continue
            _freeze_loaded()
            self.ready, self.not_ready_reason = True, ""
            return


def _freeze_loaded() -> None:
    """Move what start-up loaded (modules, policies, trust data) out of the garbage
    collector's sight: a full collection under load then walks only what reviews allocate,
    instead of pausing every review in flight for the whole heap."""
    import gc

    gc.collect()
    gc.freeze()


def _json(data: Any, status: int = 200, *, headers: dict[str, str] | None = None) -> Response:
    from starlette.responses import Response

    return Response(
        json.dumps(data, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _loop_time(monotonic_at: float) -> float:
    """A ``time.monotonic()`` instant on the running loop's clock (uvloop's is its own)."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_at - time.monotonic())


class _Disconnected(Exception):
    pass


async def _read_bounded(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length":  # the first one, as a mapping of the headers would say
            if value.isdigit() and int(value) > limit:
                raise _TooLarge
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _query_timeout(query: bytes) -> str:
    """The last ``timeout`` parameter of the query string ("" when none)."""
    if b"timeout" not in query:
        return ""  # the usual case for a direct client: nothing to parse
    from urllib.parse import parse_qsl

    value = ""
    for name, text in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "timeout":
            value = text
    return value


def _deadline(config: WebhookConfig, query: bytes, started: float) -> float:
    seconds = config.deadline_seconds
    # the API server appends ?timeout=10s: never wait past what it will wait for us
    match = _TIMEOUT_RE.match(_query_timeout(query))
    if match:
        seconds = min(seconds, max(0.5, int(match.group(1)) - API_TIMEOUT_MARGIN))
    return started + seconds


class _Admission:
    """``POST /validate`` or ``/mutate`` as a plain ASGI app: one review in, one JSON answer out,
    with no request or response objects built around it (the hot path of the webhook)."""

    def __init__(self, state: WebhookState, path: str, *, mutate: bool) -> None:
        self.state = state
        self.path = path
        self.mutate = mutate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        code = 500
        try:
            code, answer, close = await self._answer(scope, receive, started)
            body = json.dumps(answer, separators=(",", ":")).encode()
            headers = [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ]
            if close:
                headers.insert(0, (b"connection", b"close"))
            await send({"type": "http.response.start", "status": code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except _Disconnected:
            return  # the client left before its body arrived: nobody to answer
        finally:
            self.state.metrics.observe(self.path, code, time.monotonic() - started)

    async def _answer(
        self, scope: Scope, receive: Receive, started: float
    ) -> tuple[int, Any, bool]:
        """(status, JSON document, close the connection)."""
        state = self.state
        config = state.config
        deadline = _deadline(config, scope["query_string"], started)
        try:
            # a body dripped a byte at a time must not hold the connection past the deadline
            async with asyncio.timeout_at(_loop_time(deadline)):
                body = await _read_bounded(scope, receive, config.max_body_bytes)
        except _TooLarge:
            return 413, {"error": f"body larger than {config.max_body_bytes} bytes"}, False
        except TimeoutError:
            return 408, {"error": "the request body did not arrive before the deadline"}, True
        try:
            review = parse_review(json.loads(body))
        except (ValueError, RecursionError, MalformedReview) as exc:  # JSONDecodeError too
            what = "malformed JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            return 400, {"error": f"bad AdmissionReview: {what}"}, False
        try:
            decision, _ = await state.decider.decide(
                review, mutate=self.mutate, deadline=deadline, budget=deadline - started
            )
        except MalformedReview as exc:
            return 400, {"error": f"bad AdmissionReview: {exc}"}, False
        except Exception as exc:  # last resort: a bug denies, in the API server's shape
            log.error("internal error deciding %s", review.uid, exc_info=exc)
            decision = Decision(allowed=False, refusals=[internal_error_line(exc)])
        return 200, state.decider.answer(review, decision), False


class WebhookApp:
    """The ASGI app: ``POST /validate`` and ``/mutate`` go straight to their handlers; everything
    else (probes, metrics, lifespan, 404 and 405 answers) to a starlette app. Routing and
    middleware layers cost more per review than deciding a cached one."""

    def __init__(self, fallback: Starlette, admission: dict[str, _Admission]) -> None:
        self.fallback = fallback
        self.admission = admission
        self.state = fallback.state  # ``state.webhook``: the WebhookState

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.admission.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


def create_app(
    config: WebhookConfig,
    checker: ImageChecker | None = None,
    *,
    tls: ReloadingTLS | None = None,
) -> WebhookApp:
    """The webhook app. ``checker`` defaults to the trustkit pipeline with the process's
    ``Services`` built from the environment (the composition root of a webhook process)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    if checker is None:
        from trustkit.config import Settings
        from trustkit.services import Services
        from trustkit.webhook.checker import PipelineChecker

        checker = PipelineChecker(Services(Settings.from_env()), config.policy_files)
    state = WebhookState(config, checker)

    def timed(
        path: str, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.monotonic()
            code = 500
            try:
                result = await handler(request)
                code = result.status_code
                return result
            finally:
                state.metrics.observe(path, code, time.monotonic() - started)

        return endpoint

    async def healthz(request: Request) -> Response:
        return _json({"ok": True})

    async def readyz(request: Request) -> Response:
        if state.ready:
            return _json({"ready": True})
        return _json({"ready": False, "reason": state.not_ready_reason}, 503)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(
            state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(state.prepare())]
        if tls is not None:
            tasks.append(asyncio.create_task(tls.watch()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            state.executor.shutdown(wait=False, cancel_futures=True)

    admission = {
        "/validate": _Admission(state, "/validate", mutate=False),
        "/mutate": _Admission(state, "/mutate", mutate=True),
    }
    routes = [
        # also reached through starlette when the fast path does not apply (a root path)
        Route("/validate", admission["/validate"], methods=["POST"]),
        Route("/mutate", admission["/mutate"], methods=["POST"]),
        Route("/healthz", timed("/healthz", healthz), methods=["GET"]),
        Route("/readyz", timed("/readyz", readyz), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    fallback = Starlette(routes=routes, lifespan=lifespan)
    fallback.state.webhook = state
    return WebhookApp(fallback, admission)
