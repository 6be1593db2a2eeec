"""AdjustableLimiter and a worker's share of worker_count."""

from __future__ import annotations

import asyncio

from app.domain.limiter import AdjustableLimiter, share_of


def test_share_of_worker_count_follows_owned_partitions() -> None:
    assert share_of(20, 8, 8) == 20
    assert share_of(20, 4, 8) + share_of(20, 4, 8) == 20
    assert share_of(5, 3, 8) == 1  # floor, but never below one
    assert share_of(5, 0, 8) == 1
    assert share_of(5, 2, 0) == 1


async def test_limiter_bounds_concurrency_and_can_shrink() -> None:
    limiter = AdjustableLimiter(3)
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with limiter.slot():
            peak = max(peak, limiter.active)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(work() for _ in range(12)))
    assert peak == 3
    await limiter.set_limit(1)
    peak = 0
    await asyncio.gather(*(work() for _ in range(5)))
    assert peak == 1
    assert limiter.active == 0
