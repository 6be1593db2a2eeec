"""Templates run in child processes with a time limit: a slow template is cut off without
blocking the event loop, and other jobs' templates still evaluate meanwhile."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.domain.templates import TemplateError
from app.transport.template_runner import TemplateRunner, TemplateTimeout

USER = {"id": "u1", "data": {"region": "eu"}, "by_fields": {}, "segment_events": []}
JOB = {"id": "job1"}
SLOW = "std.foldl(function(a, b) a + b, std.range(1, 50000000), 0)"


async def test_renders_like_the_pure_function() -> None:
    runner = TemplateRunner(processes=1, timeout_s=5)
    try:
        value = await runner.render('"https://x/" + user.data.region', USER, JOB, "job1")
        assert value == "https://x/eu"
        with pytest.raises(TemplateError, match="boom"):
            await runner.render('error "boom"', USER, JOB, "job1")
    finally:
        await runner.close()


async def test_slow_template_times_out_without_blocking_the_loop_or_other_jobs() -> None:
    runner = TemplateRunner(processes=2, timeout_s=0.5)
    try:
        await runner.render('"warm"', USER, JOB, "fast")  # start the children
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        slow = asyncio.create_task(runner.render(SLOW, USER, JOB, "slow"))
        await asyncio.sleep(0.05)
        fast = await runner.render('"ok " + user.id', USER, JOB, "fast")
        fast_after = time.monotonic() - started
        with pytest.raises(TemplateTimeout, match=r"0\.5 s"):
            await slow
        ticker.cancel()
        assert fast == "ok u1"
        assert fast_after < 0.4, "another job's template waited for the slow one"
        assert ticks > 20, "the event loop was blocked while the slow template ran"
        assert runner.timeouts == 1
        # the replaced child works
        assert await runner.render("1 + 1", USER, JOB, "slow") == 2
    finally:
        await runner.close()


async def test_memory_hungry_template_is_an_error_not_a_crash() -> None:
    runner = TemplateRunner(processes=1, timeout_s=10, memory_bytes=256 * 1024 * 1024)
    try:
        with pytest.raises(TemplateError):
            await runner.render('std.repeat("x", 400000000)', USER, JOB, "big")
        assert await runner.render('"still fine"', USER, JOB, "big") == "still fine"
    finally:
        await runner.close()
