"""Benchmark receiver: a lean HTTPS server (own process) that counts events and measures
produce-to-receive latency from the `produced_at` field each event carries.

GET /stats -> {"events", "requests", "first", "last", "latencies_ms": [...], "cpu"};
POST /reset.

Deliveries to `/hook/NAME` are also timed per NAME (one receive time per request):
GET /paths -> {NAME: [receive times]}; the churn figure tells jobs apart this way.

POST /watch {"pids": [...], "count": N}: sample the CPU seconds of those processes (and their
descendants) when the first event arrives and when the N-th does, so the CPU a drain costs
excludes the process's start-up and whatever it does after the drain. The samples are in
`/stats` under "cpu"; "late" says events had already arrived when the watch was set.
"""

from __future__ import annotations

import argparse
import ssl
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from bench.proc import cpu_seconds


@dataclass
class Watch:
    pids: list[int]
    count: int
    late: bool
    first_cpu_s: float | None = None
    first_events: int = 0
    last_cpu_s: float | None = None
    last_events: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "pids": self.pids,
            "count": self.count,
            "late": self.late,
            "first_cpu_s": self.first_cpu_s,
            "first_events": self.first_events,
            "last_cpu_s": self.last_cpu_s,
            "last_events": self.last_events,
        }


class Counter:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.events = 0
        self.requests = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []
        self.paths: dict[str, list[float]] = {}
        self.watch: Watch | None = None

    def add(self, produced_at: list[float], path: str | None = None) -> None:
        now = time.time()
        if not self.first:
            self.first = now
        self.last = now
        self.requests += 1
        self.events += len(produced_at)
        self.latencies.extend((now - p) * 1000 for p in produced_at)
        if path is not None:
            self.paths.setdefault(path, []).append(now)
        watch = self.watch
        if watch is not None:
            if watch.first_cpu_s is None:
                watch.first_cpu_s = cpu_seconds(watch.pids)
                watch.first_events = self.events
            if watch.last_cpu_s is None and self.events >= watch.count:
                watch.last_cpu_s = cpu_seconds(watch.pids)
                watch.last_events = self.events


def produced_times(body: Any) -> list[float]:
    items = body if isinstance(body, list) else [body]
    out = []
    for item in items:
        data = item.get("data", item)
        out.append(float(data.get("produced_at", 0.0)))
    return out


def make_app(counter: Counter) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        counter.add(produced_times(body), request.match_info.get("name"))
        return web.Response(status=200)

    async def stats(_request: web.Request) -> web.Response:
        doc = {
            "events": counter.events,
            "requests": counter.requests,
            "first": counter.first,
            "last": counter.last,
            "latencies_ms": counter.latencies,
            "cpu": counter.watch.to_json() if counter.watch is not None else None,
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def paths(_request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(counter.paths), content_type="application/json")

    async def watch(request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read())
        counter.watch = Watch(
            pids=[int(p) for p in doc["pids"]], count=int(doc["count"]), late=counter.events > 0
        )
        return web.Response(
            body=orjson.dumps(counter.watch.to_json()), content_type="application/json"
        )

    async def reset(_request: web.Request) -> web.Response:
        counter.reset()
        return web.Response(status=204)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/stats", stats)
    app.router.add_get("/paths", paths)
    app.router.add_post("/watch", watch)
    app.router.add_post("/reset", reset)
    app.router.add_route("*", "/hook", hook)
    app.router.add_route("*", "/hook/{name}", hook)
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
