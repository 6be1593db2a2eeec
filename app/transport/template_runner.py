"""Jsonnet templates evaluated in child processes, with a time limit, off the event loop.

A template is code from outside: `std.range(1, 1e8)` or a deep recursion evaluates for
seconds, and the Jsonnet binding holds the GIL while it runs, so a thread would not help.
Each evaluation runs in one of a few child processes; the event loop only waits on a pipe.
An evaluation that passes the time limit kills its child (a new one replaces it) and raises
`TemplateTimeout`, which delivery dead-letters like any template error. A job evaluates one
template at a time, so a slow job holds at most one child and the others keep theirs.
Children also run under a memory limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
from collections import defaultdict
from typing import Any

import orjson

from app.domain.templates import TemplateError, render

log = logging.getLogger(__name__)

CHILD_MEMORY_BYTES = 1024 * 1024 * 1024
START_TIMEOUT_S = 60.0


class TemplateTimeout(TemplateError):
    """The template did not finish within the time limit."""


def _child(conn: multiprocessing.connection.Connection, memory_bytes: int) -> None:
    with contextlib.suppress(Exception):
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    conn.send(("ready", b""))  # imports done: the time limit counts evaluation only
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        source, user, job = message
        try:
            value = render(source, orjson.loads(user), orjson.loads(job))
            conn.send(("ok", orjson.dumps(value)))
        except TemplateError as exc:
            conn.send(("error", str(exc)))
        except MemoryError:
            conn.send(("error", "the template used more memory than allowed"))
        except Exception as exc:  # anything else the template makes the binding raise
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Child:
    def __init__(self, memory_bytes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(
            target=_child, args=(child_conn, memory_bytes), daemon=True, name="jsonnet"
        )
        self.process.start()
        child_conn.close()
        if not self.conn.poll(START_TIMEOUT_S) or self.conn.recv()[0] != "ready":
            self.kill()
            raise RuntimeError(f"template process did not start within {START_TIMEOUT_S} s")

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.join(1.0)
        with contextlib.suppress(Exception):
            self.conn.close()


class TemplateRunner:
    """`await render(source, user, job, key)`: the template's JSON value, or TemplateError."""

    def __init__(
        self, processes: int, timeout_s: float, memory_bytes: int = CHILD_MEMORY_BYTES
    ) -> None:
        self.size = max(1, processes)
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._idle: asyncio.Queue[_Child] | None = None
        self._children: list[_Child] = []
        self._per_key: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._spawning: set[asyncio.Future[None]] = set()
        self.timeouts = 0

    async def _pool(self) -> asyncio.Queue[_Child]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            loop = asyncio.get_running_loop()
            for _ in range(self.size):
                child = await loop.run_in_executor(None, _Child, self.memory_bytes)
                self._children.append(child)
                self._idle.put_nowait(child)
        return self._idle

    async def render(self, source: str, user: dict[str, Any], job: dict[str, Any], key: str) -> Any:
        """Evaluate; `key` (the job id) gets one evaluation at a time."""
        try:
            payload = (source, orjson.dumps(user), orjson.dumps(job))
        except (orjson.JSONEncodeError, TypeError) as exc:
            raise TemplateError(f"template input cannot be encoded ({exc})") from None
        async with self._per_key[key]:
            idle = await self._pool()
            child = await idle.get()
            loop = asyncio.get_running_loop()
            answered = False
            try:
                child.conn.send(payload)
                ready = await loop.run_in_executor(None, child.conn.poll, self.timeout_s)
                if not ready:
                    self.timeouts += 1
                    raise TemplateTimeout(f"template did not finish within {self.timeout_s:g} s")
                kind, value = child.conn.recv()
                answered = True
            except (EOFError, OSError) as exc:
                raise TemplateError(f"template evaluation crashed ({exc!r})") from None
            finally:
                if answered:
                    idle.put_nowait(child)
                else:  # timed out, crashed or cancelled: its answer must never be read
                    child.kill()
                    self._children.remove(child)
                    respawn = asyncio.ensure_future(self._spawn_into(idle))
                    self._spawning.add(respawn)
                    respawn.add_done_callback(self._spawning.discard)
        if kind == "error":
            raise TemplateError(str(value))
        return orjson.loads(value)

    async def _spawn_into(self, idle: asyncio.Queue[_Child]) -> None:
        """Start a child off the event loop and add it to the pool (retried until it starts)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                child = await loop.run_in_executor(None, _Child, self.memory_bytes)
            except Exception as exc:
                log.error("could not start a template process (%r); retrying in 5 s", exc)
                await asyncio.sleep(5.0)
                continue
            self._children.append(child)
            idle.put_nowait(child)
            return

    async def close(self) -> None:
        for task in list(self._spawning):
            task.cancel()
        for child in self._children:
            with contextlib.suppress(Exception):
                child.conn.send(None)
            child.kill()
        self._children.clear()
        self._idle = None
