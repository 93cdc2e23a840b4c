"""What the webhook asks about each image: an injected ``ImageChecker``.

The default one runs ``trustkit.pipeline.check.check_image``, the same pipeline as ``servin pull``
and the CI gate, so a cluster refuses exactly what a pull would refuse.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
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
class PreparedChecker(Protocol):
    """Optional: load trust data and policies up front; ``/readyz`` is 503 until this returns."""

    def prepare(self) -> None: ...


class PipelineChecker:
    """The default checker: ``check_image`` with policies loaded once and one ``Services`` (the
    registry pool, the key store) shared by every review of the process."""

    def __init__(self, services: Services | Settings, policy_files: Sequence[Path] = ()) -> None:
        self._services = as_services(services)
        self._settings = self._services.settings
        self._policy_files = tuple(policy_files)
        self._policies: Sequence[Any] | None = None

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
        from trustkit.refs import parse

        try:
            version = trust_data_version(self._services, parse(reference).gun)
        except TrustkitError:
            version = None
        return (reference, self._policy_files, version)

    def __call__(self, reference: str, context: Context) -> Verdict:
        from trustkit.pipeline.check import check_image

        kwargs: dict[str, Any] = {"context": context, "policy_files": self._policy_files}
        if self._policies is not None:
            kwargs["policies"] = self._policies
        return check_image(self._services, reference, **kwargs)
