"""Verdict cache with TTLs, and single-flight: one verification per image however many ask.

Lives on the event loop (one thread), so no locks: the checker itself runs in a thread pool and its
result is stored by a callback on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from typing import TypeVar

from trustkit.errors import UnreachableError
from trustkit.registry.deadline import deadline_at
from trustkit.verdict import Context, Verdict

CheckFn = Callable[[str, Context], Verdict]
T = TypeVar("T")


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

    A waiter that gives up does not cancel the verification, but the verification itself ends at
    the deadline of the review that started it: its registry exchanges run under that deadline
    (``trustkit.registry.deadline``), so no thread stays busy for an answer nobody waits for.

    Verifications are grouped in lanes (the registry host): at most ``per_lane`` of a lane run at
    once, the others wait on the event loop (no thread held) until their deadline. A registry that
    hangs or drips bytes then holds ``per_lane`` threads at most, never the whole pool.
    """

    def __init__(self, cache: VerdictCache, executor: Executor, *, per_lane: int = 4) -> None:
        self._cache = cache
        self._executor = executor
        self._per_lane = per_lane
        self._inflight: dict[Hashable, asyncio.Future[Verdict]] = {}
        # lane -> (its semaphore, verifications holding or waiting for it); dropped when unused,
        # since lanes are named by what requests contain
        self._lanes: dict[Hashable, tuple[asyncio.Semaphore, list[int]]] = {}
        self.started = 0
        self.joined = 0

    def in_flight(self) -> int:
        return len(self._inflight)

    def running(self, key: Hashable) -> bool:
        return key in self._inflight

    def verify(
        self,
        key: Hashable,
        check: CheckFn,
        reference: str,
        *,
        deadline: float | None = None,
        lane: Hashable = None,
    ) -> asyncio.Future[Verdict]:
        running = self._inflight.get(key)
        if running is not None:
            self.joined += 1
            return running
        future: asyncio.Future[Verdict] = asyncio.ensure_future(
            self._run(check, reference, deadline, lane)
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

    async def _run(
        self, check: CheckFn, reference: str, deadline: float | None, lane: Hashable
    ) -> Verdict:
        return await self.in_lane(
            lane, deadline, functools.partial(check, reference, Context.ADMISSION)
        )

    async def in_lane(self, lane: Hashable, deadline: float | None, work: Callable[[], T]) -> T:
        """Run ``work`` in a worker thread once ``lane`` has room, under ``deadline``; waiting
        for room holds no thread and ends at the deadline."""
        entry = self._lanes.get(lane)
        if entry is None:
            entry = self._lanes[lane] = (asyncio.Semaphore(self._per_lane), [0])
        gate, users = entry
        users[0] += 1
        try:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(gate.acquire(), timeout)
            except TimeoutError:
                raise UnreachableError(
                    f"{self._per_lane} checks against {lane} were still running at the "
                    "deadline; this one never started",
                    hint="the registry is slow or hanging",
                ) from None
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, _under_deadline, work, deadline)
            finally:
                gate.release()
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._lanes.pop(lane, None)


def _under_deadline(work: Callable[[], T], deadline: float | None) -> T:
    """Run in a worker thread: nothing starts past the deadline, and every registry exchange of
    the work ends by it."""
    if deadline is None:
        return work()
    if time.monotonic() >= deadline:
        raise UnreachableError("the review was answered before this verification could start")
    with deadline_at(deadline):
        return work()
