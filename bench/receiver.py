"""Benchmark receiver: a lean HTTPS server (own process) that counts events and measures
produce-to-receive latency from the `produced_at` field each event carries.

GET /stats -> {"events", "requests", "first", "last", "latencies_ms": [...]}; POST /reset.
"""

from __future__ import annotations

import argparse
import ssl
import time
from typing import Any

import orjson
from aiohttp import web


class Counter:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.events = 0
        self.requests = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []

    def add(self, produced_at: list[float]) -> None:
        now = time.time()
        if not self.first:
            self.first = now
        self.last = now
        self.requests += 1
        self.events += len(produced_at)
        self.latencies.extend((now - p) * 1000 for p in produced_at)


def produced_times(body: Any) -> list[float]:
    items = body if isinstance(body, list) else [body]
    out = []
    for item in items:
        data = item.get("data", item)
        out.append(float(data.get("produced_at", 0.0)))
    return out


def make_app(counter: Counter) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        counter.add(produced_times(orjson.loads(await request.read())))
        return web.Response(status=200)

    async def stats(_request: web.Request) -> web.Response:
        doc = {
            "events": counter.events,
            "requests": counter.requests,
            "first": counter.first,
            "last": counter.last,
            "latencies_ms": counter.latencies,
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def reset(_request: web.Request) -> web.Response:
        counter.reset()
        return web.Response(status=204)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    app.router.add_route("*", "/hook", hook)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    web.run_app(
        make_app(Counter()),
        host="127.0.0.1",
        port=args.port,
        ssl_context=context,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
