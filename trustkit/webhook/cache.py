"""Verdict cache with TTLs, and single-flight: one verification per image however many ask.

Lives on the event loop (one thread), so no locks: the checker itself runs in a thread pool and its
result is stored by a callback on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor

from trustkit.verdict import Context, Verdict

CheckFn = Callable[[str, Context], Verdict]


class VerdictCache:
    """Allowed verdicts live ``ttl`` seconds, refusals ``refusal_ttl``; LRU past ``max_entries``."""

    def __init__(
        self,
        *,
        ttl: float,
        refusal_ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._refusal_ttl = refusal_ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Verdict]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Verdict | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, verdict = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return verdict

    def put(self, key: Hashable, verdict: Verdict) -> None:
        ttl = self._ttl if verdict.allowed else self._refusal_ttl
        if ttl <= 0 or self._max <= 0:
            return
        self._entries[key] = (self._clock() + ttl, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class SingleFlight:
    """Start at most one verification per key; later callers share its future.

    Futures are never cancelled by a waiter that gives up at its deadline: the verification goes on
    in its thread and, when it finishes, fills the cache for the next request.
    """

    def __init__(self, cache: VerdictCache, executor: Executor) -> None:
        self._cache = cache
        self._executor = executor
        self._inflight: dict[Hashable, asyncio.Future[Verdict]] = {}
        self.started = 0
        self.joined = 0

    def in_flight(self) -> int:
        return len(self._inflight)

    def running(self, key: Hashable) -> bool:
        return key in self._inflight

    def verify(self, key: Hashable, check: CheckFn, reference: str) -> asyncio.Future[Verdict]:
        running = self._inflight.get(key)
        if running is not None:
            self.joined += 1
            return running
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Verdict] = loop.run_in_executor(
            self._executor, check, reference, Context.ADMISSION
        )
        self._inflight[key] = future
        self.started += 1

        def finished(done: asyncio.Future[Verdict]) -> None:
            self._inflight.pop(key, None)
            if done.cancelled():
                return
            error = done.exception()  # retrieved here so asyncio never logs it as lost
            if error is None:
                result = done.result()
                if isinstance(result, Verdict):
                    self._cache.put(key, result)

        future.add_done_callback(finished)
        return future
