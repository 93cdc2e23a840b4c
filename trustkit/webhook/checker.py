"""What the webhook asks about each image: an injected ``ImageChecker``.

The default one runs ``trustkit.pipeline.check.check_image``, the same pipeline as ``servin pull``
and the CI gate, so a cluster refuses exactly what a pull would refuse.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from trustkit.config import Settings
from trustkit.services import Services, as_services
from trustkit.verdict import Context, Verdict


class ImageChecker(Protocol):
    """Decide about one image. Synchronous: the webhook runs it in a thread pool with a deadline.

    Return a ``Verdict`` for every refusal; raise ``TrustkitError`` only for bad input or an
    environment failure (the webhook turns those into a denial, or a warning when failing open).
    """

    def __call__(self, reference: str, context: Context) -> Verdict: ...


@runtime_checkable
class KeyedChecker(Protocol):
    """Optional: a checker that knows what its verdicts depend on (policy set, trust data)."""

    def cache_key(self, reference: str) -> Hashable: ...


@runtime_checkable
class RememberingChecker(Protocol):
    """Optional, with ``KeyedChecker``: the key without any I/O when what it depends on was read
    recently (None otherwise), so a cached review stays on the event loop, off the thread pool."""

    def known_key(self, reference: str) -> Hashable | None: ...

    def refresh_due(self, reference: str) -> bool:
        """True (once) when the remembered version should be read again in the background, so
        that no review has to wait for that read when the TTL runs out."""
        ...


#: how long a collection's trust-data version read for a cache key is reused without reading it
#: again: a publish (a revocation) reaches the webhook's cached verdicts within this time
VERSION_TTL_SECONDS = 1.0
#: collections whose versions are remembered; past it the memory is emptied (names come from
#: reviews, so their number is bounded here, not by the cluster)
MAX_REMEMBERED_VERSIONS = 4096


@functools.lru_cache(maxsize=4096)
def _gun_of(reference: str) -> str | None:
    from trustkit.errors import TrustkitError
    from trustkit.refs import parse

    try:
        return parse(reference).gun
    except TrustkitError:
        return None


@runtime_checkable
class PreparedChecker(Protocol):
    """Optional: load trust data and policies up front; ``/readyz`` is 503 until this returns."""

    def prepare(self) -> None: ...


class PipelineChecker:
    """The default checker: ``check_image`` with policies loaded once and one ``Services`` (the
    registry pool, the key store) shared by every review of the process."""

    def __init__(
        self,
        services: Services | Settings,
        policy_files: Sequence[Path] = (),
        *,
        version_ttl: float = VERSION_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._services = as_services(services)
        self._settings = self._services.settings
        self._policy_files = tuple(policy_files)
        self._policies: Sequence[Any] | None = None
        self._version_ttl = version_ttl
        self._clock = clock
        # gun -> (read until, version): written by worker threads, read on the event loop
        self._versions: dict[str, tuple[float, str | None]] = {}
        self._versions_lock = threading.Lock()
        # gun -> when a background re-read was handed out (one at a time per collection)
        self._refreshing: dict[str, float] = {}

    def prepare(self) -> None:
        import trustkit.pipeline.check  # noqa: F401 - imported here so the first review does not pay it
        from trustkit.policy import load_policies

        self._policies = load_policies(self._settings, extra_files=list(self._policy_files))

    def cache_key(self, reference: str) -> Hashable:
        # the same before and after prepare(): a verdict given while policies were still loading
        # is found again. This checker's policies never change (the config generation covers
        # their contents). The trust-data version changes with every publish of the image's
        # collection (a signature, a revocation, a rotation), so such a change is never masked
        # by a cached verdict; an unparsable reference keys on itself and is refused anyway
        from trustkit.collections import trust_data_version
        from trustkit.errors import TrustkitError

        gun = _gun_of(reference)
        if gun is None:
            return (reference, self._policy_files, None)
        started = self._clock()  # the version is at least this fresh
        try:
            # the process's store (one Services): no store opened, no registry client built
            version = trust_data_version(self._services, gun)
        except TrustkitError:
            return (reference, self._policy_files, None)  # not remembered: read again next time
        finally:
            with self._versions_lock:
                self._refreshing.pop(gun, None)
        if self._version_ttl > 0:
            with self._versions_lock:
                if len(self._versions) >= MAX_REMEMBERED_VERSIONS:
                    self._versions.clear()
                    self._refreshing.clear()
                self._versions[gun] = (started + self._version_ttl, version)
        return (reference, self._policy_files, version)

    def refresh_due(self, reference: str) -> bool:
        """Past half the TTL, the first caller gets True and re-reads the version in the
        background (``cache_key`` in a worker); until the TTL ends, reviews keep using the
        remembered one, so a publish is still seen within the TTL and no review waits."""
        gun = _gun_of(reference)
        if gun is None:
            return False
        now = self._clock()
        remembered = self._versions.get(gun)  # one atomic read: the usual answer needs no lock
        if remembered is None or now < remembered[0] - self._version_ttl / 2:
            return False
        with self._versions_lock:
            remembered = self._versions.get(gun)
            if remembered is None or now < remembered[0] - self._version_ttl / 2:
                return False
            handed_out = self._refreshing.get(gun)
            if handed_out is not None and now - handed_out < self._version_ttl:
                return False  # one re-read at a time; a lost one is retried after the TTL
            self._refreshing[gun] = now
            return True

    def known_key(self, reference: str) -> Hashable | None:
        """``cache_key`` without I/O when the collection's version was read within the TTL."""
        gun = _gun_of(reference)
        if gun is None:
            return None
        remembered = self._versions.get(gun)
        if remembered is None or self._clock() >= remembered[0]:
            return None
        return (reference, self._policy_files, remembered[1])

    def __call__(self, reference: str, context: Context) -> Verdict:
        from trustkit.pipeline.check import check_image

        kwargs: dict[str, Any] = {"context": context, "policy_files": self._policy_files}
        if self._policies is not None:
            kwargs["policies"] = self._policies
        return check_image(self._services, reference, **kwargs)
