"""From images to an admission answer: check each image once, under one deadline, fail closed."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from trustkit import refs
from trustkit.errors import BadInputError, TrustkitError, internal_error_line
from trustkit.verdict import Action, Verdict
from trustkit.webhook.cache import SingleFlight, VerdictCache
from trustkit.webhook.checker import ImageChecker, KeyedChecker, RememberingChecker
from trustkit.webhook.config import WebhookConfig
from trustkit.webhook.metrics import Metrics
from trustkit.webhook.review import ImageSite, Review, images_to_check, pinned_image, response

log = logging.getLogger("trustkit.webhook")
MAX_REASON_CHARS = 300
#: verifications queued or running at once; past this a new image is refused (fail closed),
#: so a flood of distinct images against a hanging registry cannot grow the queue without end
MAX_IN_FLIGHT = 4096
#: verdicts whose expiry was recorded, remembered at most (references come from reviews)
MAX_NOTED_VERDICTS = 4096


@dataclass(frozen=True, slots=True)
class Failure:
    """No verdict: the check timed out or could not run. ``bad_input`` is never failed open."""

    message: str
    bad_input: bool = False


Outcome = Verdict | Failure | None  # None: exempt image


@dataclass
class Decision:
    allowed: bool = True
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    audit: dict[str, str] = field(default_factory=dict)
    patch: list[dict[str, Any]] = field(default_factory=list)


class Decider:
    def __init__(
        self,
        config: WebhookConfig,
        checker: ImageChecker,
        flights: SingleFlight,
        cache: VerdictCache,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.checker = checker
        self.flights = flights
        self.cache = cache
        self.metrics = metrics
        # a runtime Protocol check is slow: do it once, not per image
        self._keyed = checker if isinstance(checker, KeyedChecker) else None
        self._background: set[asyncio.Future[Any]] = set()  # re-reads in flight (kept alive)
        self._remembering = (
            checker if self._keyed is not None and isinstance(checker, RememberingChecker) else None
        )
        # reference -> the verdict whose trust-data expiry the metrics last recorded
        self._expiry_noted: dict[str, Verdict] = {}

    def _key(self, normalised: str) -> Hashable:
        base = normalised if self._keyed is None else self._keyed.cache_key(normalised)
        return (base, self.config.generation)

    async def _key_by(self, normalised: str, lane: str, deadline: float) -> Hashable:
        """The cache key of a keyed checker, which reads the trust data's version (from the
        image's registry when trust data lives there): in a worker thread, in the image's registry
        lane and under the review's deadline, like a verification, so a dripping registry holds
        no more threads for its keys than for its checks."""
        return await self.flights.in_lane(lane, deadline, functools.partial(self._key, normalised))

    async def outcomes(
        self, images: list[str], deadline: float, *, budget: float | None = None
    ) -> dict[str, Outcome]:
        """One outcome per distinct image text; waits at most until ``deadline`` (monotonic).

        ``budget`` is the request's whole allowance in seconds, named in a timeout's reason (it is
        shorter than the configured deadline when the API server's ``?timeout=`` is).
        """
        results: dict[str, Outcome] = {}
        checked: dict[str, str] = {}  # image -> normalised
        for image in dict.fromkeys(images):
            try:
                normalised = _normalise(image)
            except BadInputError as exc:
                results[image] = Failure(f"invalid image reference: {exc}", bad_input=True)
                continue
            if self.config.image_exempt(image, normalised):
                results[image] = None
                continue
            checked[image] = normalised
        keys = await self._keys(checked, deadline, budget, results)
        pending: dict[str, asyncio.Future[Verdict]] = {}
        for image, key in keys.items():
            cached = self.cache.get(key)
            if cached is not None:
                self.metrics.cache["hit"] += 1
                results[image] = cached
                continue
            if self.flights.in_flight() >= MAX_IN_FLIGHT and not self.flights.running(key):
                self.metrics.errors["overloaded"] += 1
                results[image] = Failure(f"over {MAX_IN_FLIGHT} verifications in flight")
                continue
            before = self.flights.joined
            normalised = checked[image]
            pending[image] = self.flights.verify(
                key, self.checker, normalised, deadline=deadline, lane=_lane(normalised)
            )
            self.metrics.cache["shared" if self.flights.joined > before else "miss"] += 1
        if pending:
            timeout = max(0.0, deadline - time.monotonic())
            await asyncio.wait(set(pending.values()), timeout=timeout)
        for image, future in pending.items():
            results[image] = self._outcome_of(image, future, budget)
        return results

    async def _keys(
        self,
        checked: dict[str, str],
        deadline: float,
        budget: float | None,
        results: dict[str, Outcome],
    ) -> dict[str, Hashable]:
        """Cache keys of ``checked`` images, all at once; an image whose key could not be had by
        the deadline gets its failure in ``results`` instead."""
        if self._keyed is None:
            return {image: self._key(normalised) for image, normalised in checked.items()}
        keys: dict[str, Hashable] = {}
        tasks = {}
        for image, normalised in checked.items():
            # a version read moments ago: the key without a worker thread or any I/O
            known = None if self._remembering is None else self._remembering.known_key(normalised)
            if known is not None:
                keys[image] = (known, self.config.generation)
                if self._remembering is not None and self._remembering.refresh_due(normalised):
                    self._refresh_in_background(normalised, deadline)
                continue
            tasks[image] = asyncio.ensure_future(
                self._key_by(normalised, _lane(normalised), deadline)
            )
        if tasks:
            await asyncio.wait(set(tasks.values()), timeout=max(0.0, deadline - time.monotonic()))
        for image, task in tasks.items():
            if task.done() and task.exception() is None:
                keys[image] = task.result()
            else:
                results[image] = self._outcome_of(image, task, budget)
        return keys

    def _refresh_in_background(self, normalised: str, deadline: float) -> None:
        """Re-read the version before it runs out, off the request path (same lane, same
        deadline as a key read; its result only updates the checker's memory)."""
        task = asyncio.ensure_future(self._key_by(normalised, _lane(normalised), deadline))
        self._background.add(task)

        def done(finished: asyncio.Future[Any]) -> None:
            self._background.discard(finished)
            if not finished.cancelled():
                finished.exception()  # retrieved: a failed re-read is retried, never logged lost

        task.add_done_callback(done)

    def _outcome_of(
        self, image: str, future: asyncio.Future[Any], budget: float | None = None
    ) -> Outcome:
        if not future.done():
            self.metrics.errors["timeout"] += 1
            seconds = self.config.deadline_seconds if budget is None else round(budget, 1)
            return Failure(f"verification did not finish within the {seconds:g} s deadline")
        error = future.exception()
        if error is None:
            result: Verdict = future.result()
            return result
        self.metrics.errors["error"] += 1
        if isinstance(error, BadInputError):
            return Failure(error.one_line(), bad_input=True)
        if isinstance(error, TrustkitError):
            return Failure(error.one_line())
        log.error("internal error checking %s", image, exc_info=error)
        return Failure(internal_error_line(error))

    async def decide(
        self, review: Review, *, mutate: bool, deadline: float, budget: float | None = None
    ) -> tuple[Decision, list[ImageSite]]:
        decision = Decision()
        if self.config.namespace_exempt(review.namespace):
            return decision, []
        sites = images_to_check(review)
        if len(sites) > self.config.max_images:
            decision.allowed = False
            decision.refusals.append(
                f"{len(sites)} images in one object, over the limit of {self.config.max_images}"
            )
            return decision, sites
        outcomes = await self.outcomes([s.image for s in sites], deadline, budget=budget)
        for image, outcome in outcomes.items():
            self._judge(decision, image, outcome)
        if mutate and decision.allowed:
            decision.patch = self._pins(sites, outcomes)
        return decision, sites

    def _judge(self, decision: Decision, image: str, outcome: Outcome) -> None:
        config = self.config
        if outcome is None:
            self.metrics.verdicts["exempt"] += 1
            return
        if isinstance(outcome, Failure):
            self.metrics.verdicts["error"] += 1
            text = f"{image}: {outcome.message}"
            if config.fail_open and not outcome.bad_input:
                decision.warnings.append(f"not verified (failing open): {text}")
            elif config.mode == "warn":
                decision.warnings.append(f"would be refused: {text}")
            else:
                decision.allowed = False
                decision.refusals.append(text)
            return
        self.metrics.verdicts[outcome.action.name] += 1
        evidence = outcome.evidence
        if (
            evidence is not None
            and evidence.verified
            and evidence.expires is not None
            and self._expiry_noted.get(outcome.reference) is not outcome
        ):
            # once per verdict, not once per review that reuses it from the cache
            if len(self._expiry_noted) >= MAX_NOTED_VERDICTS:
                self._expiry_noted.clear()
            self._expiry_noted[outcome.reference] = outcome
            self.metrics.trust_expires(_collection_of(outcome.reference), evidence.expires)
        if not outcome.allowed:
            why = _why(outcome)
            if config.mode == "warn":
                decision.warnings.append(f"would be refused: {image}: {why}")
            else:
                decision.allowed = False
                decision.refusals.append(f"{image}: {why}")
            return
        for reason in outcome.reasons:
            if reason.action is Action.WARN:
                decision.warnings.append(f"{image}: {_short(reason.message)}")
        audited = [r for r in outcome.reasons if r.action is Action.AUDIT]
        if audited:
            key = f"image-{len(decision.audit)}"
            decision.audit[key] = _short(
                f"{image}: " + "; ".join(f"{r.rule}: {r.message}" for r in audited), 1000
            )

    def _pins(self, sites: list[ImageSite], outcomes: dict[str, Outcome]) -> list[dict[str, Any]]:
        """Pin each trusted tag to the digest its verdict allowed; never touch a pinned image."""
        patch: list[dict[str, Any]] = []
        for site in sites:
            verdict = outcomes.get(site.image)
            if not isinstance(verdict, Verdict) or not verdict.allowed or verdict.digest is None:
                continue
            if "@" in site.image:
                continue  # already pinned: idempotent
            try:
                digest = refs.validate_digest(verdict.digest)
            except BadInputError:
                continue
            patch.append(
                {"op": "replace", "path": site.pointer, "value": pinned_image(site.image, digest)}
            )
        return patch

    def answer(self, review: Review, decision: Decision) -> dict[str, Any]:
        message = None
        if not decision.allowed:
            message = f"trustkit refused {len(decision.refusals)} image(s): " + " | ".join(
                decision.refusals
            )
        return response(
            review,
            allowed=decision.allowed,
            message=message,
            warnings=decision.warnings,
            audit=decision.audit,
            patch=decision.patch,
        )


def _lane(normalised: str) -> str:
    """The registry host an image is verified against (a normalised reference starts with it)."""
    return normalised.split("/", 1)[0]


@functools.lru_cache(maxsize=2048)
def _normalise(image: str) -> str:
    """``nginx`` -> ``docker.io/library/nginx:latest``; memoised, the same images come back."""
    return str(refs.parse(image))


def _short(text: str, limit: int = MAX_REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _why(verdict: Verdict) -> str:
    blocking = [r for r in verdict.reasons if r.action is Action.BLOCK] or list(verdict.reasons)
    if not blocking:
        return "refused"
    return "; ".join(_short(_named(r.policy, r.message)) for r in blocking)


def _named(policy: str | None, message: str) -> str:
    """Prefix the policy's name unless the message already starts with it."""
    if not policy or message.startswith((f"policy {policy}:", f"{policy}:")):
        return message
    return f"{policy}: {message}"


@functools.lru_cache(maxsize=2048)  # once per reference, not once per cached review
def _collection_of(reference: str) -> str:
    """The trust collection (GUN) of a verdict's normalised reference."""
    from trustkit.refs import parse

    try:
        return parse(reference).gun
    except TrustkitError:
        return reference
