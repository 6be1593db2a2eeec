"""One way for tests to wait: poll something observable until it holds, or fail saying what
was last seen. (No fixed sleeps: a test waits exactly as long as the system needs.)"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(  # type: ignore[overload-overlap]
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    wait_s: float,
    interval_s: float = 0.2,
    what: str | Callable[[T | None], str] = "condition",
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    until: Callable[[T], bool],
    *,
    wait_s: float,
    interval_s: float = 0.2,
    what: str | Callable[[T | None], str] = "condition",
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    until: Callable[[Any], bool],
    *,
    wait_s: float,
    interval_s: float = 0.2,
    what: str | Callable[[Any], str] = "condition",
) -> Any:
    """Call `probe` every `interval_s` until `until(value)` holds and return that value;
    after `wait_s`, raise AssertionError naming `what` (a text, or one made from the last
    value seen)."""
    deadline = time.monotonic() + wait_s
    last: Any = None
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        last = value
        if until(value):
            return value
        if time.monotonic() >= deadline:
            text = what(last) if callable(what) else f"{what} not reached in {wait_s:g} s"
            raise AssertionError(text)
        await asyncio.sleep(interval_s)
