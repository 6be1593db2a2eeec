"""Retry decisions for one webhook request: what an answer means, and how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    DELIVERED = "delivered"
    OMIT = "omit"  # do-not-retry status: dead-letter the events, not an error of the job
    RETRY = "retry"


def classify(status: int, never_retry: frozenset[int]) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in never_retry:
        return Outcome.OMIT
    return Outcome.RETRY


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with +/- `jitter` proportional randomisation, capped at `max_s`."""

    initial_s: float
    max_s: float
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait before retry number `attempt` (1 = the first retry)."""
        base = min(self.max_s, self.initial_s * 2.0 ** min(64, max(0, attempt - 1)))
        spread: float = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.max_s, base * spread)
