"""Retry decisions: what a status means, and the backoff between attempts."""

from __future__ import annotations

import random

import pytest

from app.domain.jobs import BUILTIN_DO_NOT_RETRY
from app.domain.retry import Outcome, RetryPolicy, classify


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (400, Outcome.OMIT),
        (404, Outcome.OMIT),
        (413, Outcome.OMIT),
        (401, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (429, Outcome.RETRY),
    ],
)
def test_classify_builtin(status: int, outcome: Outcome) -> None:
    assert classify(status, BUILTIN_DO_NOT_RETRY) is outcome


def test_classify_job_own_do_not_retry() -> None:
    never = BUILTIN_DO_NOT_RETRY | {401}
    assert classify(401, never) is Outcome.OMIT
    assert classify(500, never) is Outcome.RETRY


def test_delay_doubles_and_is_capped_without_jitter() -> None:
    policy = RetryPolicy(initial_s=1.0, max_s=10.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_delay_jitter_stays_within_twenty_percent() -> None:
    policy = RetryPolicy(initial_s=1.0, max_s=100.0)
    rng = random.Random(1234)
    for attempt in range(1, 6):
        base = 2.0 ** (attempt - 1)
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0.8 * base <= d <= 1.2 * base for d in delays)
        assert len(set(delays)) > 1


def test_delay_with_jitter_never_exceeds_max() -> None:
    policy = RetryPolicy(initial_s=1.0, max_s=5.0)
    rng = random.Random(7)
    assert all(4.0 <= policy.delay(10, rng) <= 5.0 for _ in range(200))
