"""Optimistic writers' retry policy, shared by the engine and co-signing."""

from __future__ import annotations

import random
import time

#: how often a change is re-applied after another writer published first
MAX_WRITE_ATTEMPTS = 10


def back_off(attempt: int) -> None:
    """A random pause growing with each lost race, so writers that collided do not collide
    again in lockstep (stores without a writer lock)."""
    time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))
