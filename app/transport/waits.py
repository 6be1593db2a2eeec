"""Waiting with a timeout, in code that is cancelled.

On Python 3.11, `asyncio.wait_for` loses a cancellation that arrives just as what it waits
for completes: it returns the result instead of raising CancelledError. A loop that waits
for an event that is often set (a job's batching loop, woken by every record and every
finished request) then goes on after `task.cancel()`, and whoever awaits the cancelled task
waits forever: a job handed over to another worker process while draining its backlog never
finished handing over, and its new holder never started it (CI, issue 21). `asyncio.timeout`
does not have that flaw, so the project uses it instead (ruff bans `asyncio.wait_for`).
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, within_s: float | None) -> bool:
    """Wait until `event` is set, for at most `within_s` seconds (None: no limit). True when
    it is set; a cancellation is never lost."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(within_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
