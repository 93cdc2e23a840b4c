"""Prometheus text exposition, written by hand: a few counters and one histogram need no library."""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import datetime

#: collections whose expiry is exported at most: the label set stays bounded whatever is admitted
MAX_EXPIRY_SERIES = 1000
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _labels(**pairs: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items()) + "}"


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.cache: Counter[str] = Counter()  # hit / miss / shared
        self.errors: Counter[str] = Counter()  # timeout / error
        self._buckets: dict[str, list[int]] = {}
        self._sum: dict[str, float] = {}
        self._count: Counter[str] = Counter()
        self.gauges: dict[str, Callable[[], float]] = {}
        # collection -> expiry (epoch seconds) of the trust data last verified for it
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._expiry_lock = threading.Lock()
        self.clock: Callable[[], float] = time.time

    def trust_expires(self, collection: str, expires: datetime) -> None:
        """Record when the trust data just verified for ``collection`` expires; the least
        recently verified collection is dropped beyond MAX_EXPIRY_SERIES."""
        with self._expiry_lock:
            self._expiry[collection] = expires.timestamp()
            self._expiry.move_to_end(collection)
            while len(self._expiry) > MAX_EXPIRY_SERIES:
                self._expiry.popitem(last=False)

    def observe(self, path: str, code: int, seconds: float) -> None:
        self.requests[(path, code)] += 1
        buckets = self._buckets.get(path)
        if buckets is None:
            buckets = self._buckets[path] = [0] * len(LATENCY_BUCKETS)
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)  # the first bound >= seconds
        if index < len(LATENCY_BUCKETS):
            buckets[index] += 1
        self._sum[path] = self._sum.get(path, 0.0) + seconds
        self._count[path] += 1

    def render(self) -> str:
        out: list[str] = []
        out += [
            "# HELP trustkit_webhook_requests_total HTTP requests by path and status code.",
            "# TYPE trustkit_webhook_requests_total counter",
        ]
        for (path, code), n in sorted(self.requests.items()):
            out.append(f"trustkit_webhook_requests_total{_labels(path=path, code=str(code))} {n}")
        out += [
            "# HELP trustkit_webhook_verdicts_total Image verdicts by action (error: no verdict).",
            "# TYPE trustkit_webhook_verdicts_total counter",
        ]
        for action, n in sorted(self.verdicts.items()):
            out.append(f"trustkit_webhook_verdicts_total{_labels(action=action)} {n}")
        out += [
            "# HELP trustkit_webhook_cache_total Verdict cache lookups: hit, miss, shared.",
            "# TYPE trustkit_webhook_cache_total counter",
        ]
        for result in ("hit", "miss", "shared"):
            out.append(f"trustkit_webhook_cache_total{_labels(result=result)} {self.cache[result]}")
        out += [
            "# HELP trustkit_webhook_check_failures_total Verifications that timed out or failed.",
            "# TYPE trustkit_webhook_check_failures_total counter",
        ]
        for kind in ("timeout", "error"):
            out.append(
                f"trustkit_webhook_check_failures_total{_labels(kind=kind)} {self.errors[kind]}"
            )
        out += [
            "# HELP trustkit_webhook_request_duration_seconds Time to answer a request.",
            "# TYPE trustkit_webhook_request_duration_seconds histogram",
        ]
        for path in sorted(self._buckets):
            running = 0
            for bound, n in zip(LATENCY_BUCKETS, self._buckets[path], strict=True):
                running += n
                le = _labels(path=path, le=f"{bound:g}")
                out.append(f"trustkit_webhook_request_duration_seconds_bucket{le} {running}")
            inf = _labels(path=path, le="+Inf")
            out.append(f"trustkit_webhook_request_duration_seconds_bucket{inf} {self._count[path]}")
            lab = _labels(path=path)
            out.append(f"trustkit_webhook_request_duration_seconds_sum{lab} {self._sum[path]:.6f}")
            out.append(f"trustkit_webhook_request_duration_seconds_count{lab} {self._count[path]}")
        out += [
            "# HELP trustkit_trust_expiry_seconds Seconds until the trust data last verified for "
            "a collection expires (negative: expired; renew with 'trustkit trust renew').",
            "# TYPE trustkit_trust_expiry_seconds gauge",
        ]
        now = self.clock()
        with self._expiry_lock:
            expiries = sorted(self._expiry.items())
        for collection, expires in expiries:
            lab = _labels(collection=collection)
            out.append(f"trustkit_trust_expiry_seconds{lab} {expires - now:.0f}")
        for name, read in sorted(self.gauges.items()):
            out += [f"# TYPE {name} gauge", f"{name} {read():g}"]
        return "\n".join(out) + "\n"
