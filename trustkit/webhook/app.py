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
            self.ready, self.not_ready_reason = True, ""
            return


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


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _deadline(config: WebhookConfig, request: Request, started: float) -> float:
    seconds = config.deadline_seconds
    # the API server appends ?timeout=10s: never wait past what it will wait for us
    match = _TIMEOUT_RE.match(request.query_params.get("timeout", ""))
    if match:
        seconds = min(seconds, max(0.5, int(match.group(1)) - API_TIMEOUT_MARGIN))
    return started + seconds


def create_app(
    config: WebhookConfig,
    checker: ImageChecker | None = None,
    *,
    tls: ReloadingTLS | None = None,
) -> Starlette:
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

    def admission(mutate: bool) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            started = time.monotonic()
            deadline = _deadline(config, request, started)
            try:
                # a body dripped a byte at a time must not hold the connection past the deadline
                async with asyncio.timeout_at(_loop_time(deadline)):
                    body = await _read_bounded(request, config.max_body_bytes)
            except _TooLarge:
                return _json({"error": f"body larger than {config.max_body_bytes} bytes"}, 413)
            except TimeoutError:
                return _json(
                    {"error": "the request body did not arrive before the deadline"},
                    408,
                    headers={"Connection": "close"},
                )
            try:
                review = parse_review(json.loads(body))
            except (ValueError, RecursionError, MalformedReview) as exc:  # JSONDecodeError too
                what = "malformed JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
                return _json({"error": f"bad AdmissionReview: {what}"}, 400)
            try:
                decision, _ = await state.decider.decide(
                    review, mutate=mutate, deadline=deadline, budget=deadline - started
                )
            except MalformedReview as exc:
                return _json({"error": f"bad AdmissionReview: {exc}"}, 400)
            except Exception as exc:  # last resort: a bug denies, in the API server's shape
                log.error("internal error deciding %s", review.uid, exc_info=exc)
                decision = Decision(allowed=False, refusals=[internal_error_line(exc)])
            return _json(state.decider.answer(review, decision))

        return handle

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

    routes = [
        Route("/validate", timed("/validate", admission(mutate=False)), methods=["POST"]),
        Route("/mutate", timed("/mutate", admission(mutate=True)), methods=["POST"]),
        Route("/healthz", timed("/healthz", healthz), methods=["GET"]),
        Route("/readyz", timed("/readyz", readyz), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.webhook = state
    return app
