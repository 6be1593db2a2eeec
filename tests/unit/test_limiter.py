"""AdjustableLimiter and a worker's share of worker_count."""

from __future__ import annotations

import asyncio

from app.domain.limiter import AdjustableLimiter


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


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from app.transport.worker_count_assignor import plan_shares  # noqa: E402


@given(st.integers(1, 12), st.integers(0, 16), st.integers(1, 20))
def test_shares_add_up_to_worker_count_and_never_leave_a_partition_unowned(
    members: int, partitions: int, worker_count: int
) -> None:
    names = [f"m{i}" for i in range(members)]
    shares = plan_shares(names, partitions, worker_count)
    active = [m for m, s in shares.items() if s > 0]
    if partitions == 0:
        assert not active
        return
    assert sum(shares.values()) == worker_count
    assert 1 <= len(active) <= min(members, partitions, worker_count)
    assert all(s >= 1 for s in shares.values() if s)
