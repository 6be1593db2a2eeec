"""An HTTPS webhook receiver on loopback that records every request it gets.

Behaviour is scriptable per path (`Behaviour`): status, delay, extra headers, so tests can
make an endpoint fail, slow down or send Retry-After. It tracks requests in flight, which
the worker-count tests read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from app.devtools.tls import LocalTLS, serve_https


@dataclass
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Behaviour:
    """How to answer: `respond(request_number)` -> (status, delay seconds, headers, body)."""

    respond: Callable[[int], tuple[int, float, dict[str, str], bytes]] = field(
        default=lambda n: (200, 0.0, {}, b'{"ok":true}')
    )
    # When set, the answer's body is computed from the request (e.g. an enrichment echo).
    reply: Callable[[Received], bytes] | None = None
    # When set, the whole answer (status, delay, headers, body) is computed from the request
    # instead of from its number (e.g. refuse one user's events).
    respond_to: Callable[[Received], tuple[int, float, dict[str, str], bytes]] | None = None


class WebhookReceiver:
    """Records requests; `port` is known after `start()`."""

    def __init__(self, tls: LocalTLS, host: str = "127.0.0.1", port: int = 0) -> None:
        self.tls = tls
        self.host = host
        self.port = port
        self.requests: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        # path -> check of the request; a request failing it is answered 401
        self.authorize: dict[str, Callable[[Received], bool]] = {}
        self.in_flight = 0
        self.max_in_flight: dict[str, int] = {}
        self._count: dict[str, int] = {}
        self._in_flight_by_path: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.arrived = asyncio.Event()

    def url(self, path: str) -> str:
        return f"https://{self.host}:{self.port}{path}"

    def for_path(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve_https(app, self.tls, self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body = await request.read()
        number = self._count.get(path, 0)
        self._count[path] = number + 1
        behaviour = self.behaviours.get(path, Behaviour())
        status, delay, headers, answer = behaviour.respond(number)
        received = Received(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            at=time.time(),
            status=status,
        )
        if behaviour.respond_to is not None:
            status, delay, headers, answer = behaviour.respond_to(received)
            received.status = status
        if behaviour.reply is not None:
            answer = behaviour.reply(received)
        check = self.authorize.get(path)
        if check is not None and not check(received):
            status, delay, headers, answer = 401, 0.0, {}, b'{"error":"invalid token"}'
            received.status = 401
        self.requests.append(received)
        current = self._in_flight_by_path.get(path, 0) + 1
        self._in_flight_by_path[path] = current
        self.max_in_flight[path] = max(self.max_in_flight.get(path, 0), current)
        self.in_flight += 1
        try:
            if delay:
                await asyncio.sleep(delay)
            self.arrived.set()
            return web.Response(
                status=status, body=answer, headers={"Content-Type": "application/json", **headers}
            )
        finally:
            self.in_flight -= 1
            self._in_flight_by_path[path] -= 1
