"""Receiver behaviours shared by tests."""

from __future__ import annotations

import random

from app.devtools.receiver import Behaviour


def flaky(seed: int, fail: float = 0.10, slow: float = 0.03, delay_s: float = 0.2) -> Behaviour:
    """An endpoint that answers 500 to a `fail` share of requests and delays a `slow` share
    by `delay_s`; seeded, so a run can be repeated."""
    rng = random.Random(seed)

    def respond(_n: int) -> tuple[int, float, dict[str, str], bytes]:
        roll = rng.random()
        if roll < fail:
            return 500, 0.0, {}, b'{"error":"flaky"}'
        return 200, (delay_s if roll > 1 - slow else 0.0), {}, b"{}"

    return Behaviour(respond=respond)
