"""The worker's operations endpoint (`WEBHOOKS_HTTP_PORT`, 0 = off), plain HTTP:

- `GET /healthz`: liveness. 200 while the event loop answers and no fatal error happened;
  503 with the error otherwise (Kubernetes restarts the pod).
- `GET /readyz`: readiness. 200 once the broker answered, the configs are loaded and the
  router has its input partitions (or waits for an assignment in a group that has other
  members); 503 naming what is missing.
- `GET /metrics`: the Prometheus text format (`app/transport/metrics.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from app.transport.metrics import exposition

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        fatal: Callable[[], str | None],
        not_ready: Callable[[], list[str]],
    ) -> None:
        """`fatal()`: the fatal error, if one happened; `not_ready()`: what readiness still
        waits for (empty when ready)."""
        self.host = host
        self.port = port
        self._fatal = fatal
        self._not_ready = not_ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info(
            "health and metrics on http://%s:%d (/healthz /readyz /metrics)", self.host, self.port
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        error = self._fatal()
        if error:
            return web.json_response({"status": "failing", "error": error}, status=503)
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        missing = self._not_ready()
        if missing:
            return web.json_response({"status": "not ready", "waiting_for": missing}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, _request: web.Request) -> web.Response:
        response = web.Response(body=exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
