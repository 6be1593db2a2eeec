"""`wait_event` never loses a cancellation. On Python 3.11 `asyncio.wait_for` returns instead
of raising when the cancellation arrives as the event is set: a job's batching loop then
went on after `cancel()`, and its hand-over to another worker process hung (issue 21)."""

from __future__ import annotations

import asyncio

import pytest

from app.transport.waits import wait_event


async def waiting_loop(event: asyncio.Event) -> None:
    """Like a job's batching loop: wake on the event or after a while, forever."""
    while True:
        await wait_event(event, 10.0)
        event.clear()


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_cancellation_arriving_as_the_event_is_set_stops_the_loop(turns: int) -> None:
    event = asyncio.Event()
    task = asyncio.create_task(waiting_loop(event))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the loop waits on the event
    event.set()
    for _ in range(turns):  # the cancellation lands at each point of the wake-up
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert task in done and task.cancelled()


async def test_true_when_set_false_after_the_timeout() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 5.0) is True
    assert await wait_event(event, None) is True  # already set: no wait
