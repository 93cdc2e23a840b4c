"""The default checker's cache keys: a cached review reads nothing and leaves the event loop alone,
and a publish still reaches cached verdicts within the version TTL."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import trustkit.collections
from trustkit.collections import sign_tag
from trustkit.config import Settings
from trustkit.refs import parse
from trustkit.services import Services
from trustkit.verdict import Action, Context, Verdict
from trustkit.webhook.cache import SingleFlight, VerdictCache
from trustkit.webhook.checker import PipelineChecker
from trustkit.webhook.config import WebhookConfig
from trustkit.webhook.decide import Decider
from trustkit.webhook.metrics import Metrics

REPO = "localhost:5000/team/app"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _publish(services: Services, tag: str) -> None:
    sign_tag(services, parse(f"{REPO}:{tag}"), digest=_digest(tag), size=1)


def test_version_is_remembered_for_the_ttl_only(settings: Settings) -> None:
    services = Services(settings)
    now = [100.0]
    checker = PipelineChecker(services, version_ttl=1.0, clock=lambda: now[0])
    ref = f"{REPO}:v1"
    _publish(services, "v1")
    assert checker.known_key(ref) is None  # nothing read yet
    first = checker.cache_key(ref)
    assert first[2] is not None  # type: ignore[index]
    assert checker.known_key(ref) == first
    assert checker.known_key(f"{REPO}:other") == (f"{REPO}:other", (), first[2])  # type: ignore[index]
    _publish(services, "v2")  # a new version of the collection
    now[0] += 0.5
    assert checker.known_key(ref) == first  # within the TTL: the bounded staleness
    now[0] += 0.5
    assert checker.known_key(ref) is None  # past it: read again
    second = checker.cache_key(ref)
    assert second != first
    assert checker.known_key(ref) == second


def test_no_ttl_means_always_read(settings: Settings) -> None:
    services = Services(settings)
    _publish(services, "v1")
    checker = PipelineChecker(services, version_ttl=0)
    checker.cache_key(f"{REPO}:v1")
    assert checker.known_key(f"{REPO}:v1") is None


def test_unparsable_and_failing_references_are_not_remembered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trustkit.errors import StorageError

    checker = PipelineChecker(Services(settings))
    assert checker.known_key("NOT A REFERENCE") is None
    assert checker.cache_key("NOT A REFERENCE") == ("NOT A REFERENCE", (), None)

    def broken(*_: Any) -> str:
        raise StorageError("store unreadable")

    monkeypatch.setattr(trustkit.collections, "trust_data_version", broken)
    assert checker.cache_key(f"{REPO}:v1")[2] is None  # type: ignore[index]
    assert checker.known_key(f"{REPO}:v1") is None  # a failure is read again next time


class _AllowingChecker(PipelineChecker):
    """The real cache keys; a constant verdict instead of the pipeline (no registry here)."""

    calls = 0

    def __call__(self, reference: str, context: Context) -> Verdict:
        self.calls += 1
        return Verdict(reference, context, True, Action.ALLOW)


def test_a_cached_review_reads_nothing_and_stays_on_the_loop(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = Services(settings)
    _publish(services, "v1")
    reads: list[str] = []
    real = trustkit.collections.trust_data_version

    def counting(services_: Any, gun: str) -> str | None:
        reads.append(threading.current_thread().name)
        return real(services_, gun)

    monkeypatch.setattr(trustkit.collections, "trust_data_version", counting)
    checker = _AllowingChecker(services, version_ttl=60.0)
    cache = VerdictCache(ttl=300, refusal_ttl=10, max_entries=100)
    metrics = Metrics()
    images = [f"{REPO}:v1", f"{REPO}:v2"]

    async def reviews() -> tuple[int, int]:
        with ThreadPoolExecutor(2, thread_name_prefix="worker") as pool:
            decider = Decider(WebhookConfig(), checker, SingleFlight(cache, pool), cache, metrics)
            await decider.outcomes(images, asyncio.get_running_loop().time() + 10)
            after_first = len(reads)
            loop_thread = threading.current_thread().name
            original_run = pool.submit
            hops: list[str] = []

            def watched(*args: Any, **kwargs: Any) -> Any:
                hops.append(loop_thread)
                return original_run(*args, **kwargs)

            pool.submit = watched  # type: ignore[method-assign]
            for _ in range(5):
                outcomes = await decider.outcomes(images, asyncio.get_running_loop().time() + 10)
                assert all(isinstance(v, Verdict) and v.allowed for v in outcomes.values())
            return after_first, len(hops)

    after_first, hops = asyncio.run(reviews())
    assert after_first >= 1 and all(name.startswith("worker") for name in reads)  # off the loop
    assert len(reads) == after_first  # the cached reviews read no trust data at all
    assert hops == 0  # ... and used no worker thread
    assert checker.calls == 2
    assert metrics.cache["hit"] == 10


def test_refresh_is_handed_out_once_past_half_the_ttl(settings: Settings) -> None:
    services = Services(settings)
    _publish(services, "v1")
    now = [100.0]
    checker = PipelineChecker(services, version_ttl=1.0, clock=lambda: now[0])
    ref = f"{REPO}:v1"
    assert not checker.refresh_due(ref)  # nothing remembered: the key is read on the request
    checker.cache_key(ref)
    now[0] = 100.4
    assert not checker.refresh_due(ref)
    now[0] = 100.6
    assert checker.refresh_due(ref)
    assert not checker.refresh_due(ref)  # one re-read at a time
    checker.cache_key(ref)  # the re-read: remembered until 101.6
    now[0] = 100.9
    assert not checker.refresh_due(ref)
    now[0] = 101.2
    assert checker.refresh_due(ref)
    now[0] = 102.3  # that re-read was lost (never ran): handed out again after the TTL
    checker.cache_key(ref)
    now[0] = 102.9
    assert checker.refresh_due(ref)


def test_the_version_is_re_read_in_the_background_not_on_the_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = Services(settings)
    _publish(services, "v1")
    reads: list[float] = []
    real = trustkit.collections.trust_data_version
    now = [100.0]

    def counting(services_: Any, gun: str) -> str | None:
        reads.append(now[0])
        return real(services_, gun)

    monkeypatch.setattr(trustkit.collections, "trust_data_version", counting)
    checker = _AllowingChecker(services, version_ttl=1.0, clock=lambda: now[0])
    cache = VerdictCache(ttl=300, refusal_ttl=10, max_entries=100)
    images = [f"{REPO}:v1"]

    async def reviews() -> None:
        with ThreadPoolExecutor(2) as pool:
            decider = Decider(WebhookConfig(), checker, SingleFlight(cache, pool), cache, Metrics())
            deadline = asyncio.get_running_loop().time() + 10
            await decider.outcomes(images, deadline)
            assert len(reads) == 1
            now[0] = 100.7  # past half the TTL: answered from memory, re-read behind it
            outcomes = await decider.outcomes(images, deadline)
            assert all(isinstance(v, Verdict) and v.allowed for v in outcomes.values())
            for _ in range(100):
                if len(reads) == 2:
                    break
                await asyncio.sleep(0.01)
            assert reads == [100.0, 100.7]
            now[0] = 101.1  # the first read would have run out; the re-read still holds
            await decider.outcomes(images, deadline)
            assert len(reads) == 2

    asyncio.run(reviews())
    assert checker.calls == 1
