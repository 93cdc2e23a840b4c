"""Security review of the webhook: verifications in flight are bounded, so distinct images sent
against a hanging registry cannot queue work without end; past the bound images are refused."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import trustkit.webhook.decide as decide
from trustkit.verdict import Action, Context, Verdict
from trustkit.webhook.app import WebhookState
from trustkit.webhook.config import WebhookConfig


def test_in_flight_verifications_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decide, "MAX_IN_FLIGHT", 3)
    release = threading.Event()

    def hanging_checker(reference: str, context: Context) -> Verdict:
        release.wait(10)  # a registry that does not answer
        return Verdict(
            reference=reference,
            context=context,
            allowed=True,
            action=Action.ALLOW,
            digest=None,
            reasons=(),
        )

    state = WebhookState(WebhookConfig(), hanging_checker)
    images = [f"registry.example/app{i}:v1" for i in range(6)]

    async def run() -> dict[str, object]:
        outcomes = await state.decider.outcomes(images, time.monotonic() + 0.3)
        assert state.flights.in_flight() <= 3
        return dict(outcomes)

    try:
        outcomes = asyncio.run(run())
    finally:
        release.set()
        state.executor.shutdown(wait=True)
    refused = [
        i for i, o in outcomes.items() if isinstance(o, decide.Failure) and "in flight" in o.message
    ]
    assert len(refused) == 3
    timed_out = [
        o for o in outcomes.values() if isinstance(o, decide.Failure) and "deadline" in o.message
    ]
    assert len(timed_out) == 3  # the first three were started and waited for, never allowed
