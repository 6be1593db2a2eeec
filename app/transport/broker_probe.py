"""Is the broker reachable? A metadata request every few seconds, whose outcome readiness
uses and whose changes are logged once each: "broker unreachable" (WARNING, with the error)
and "broker reachable again" (INFO). aiokafka's own logger is quiet (the CLI sets it to
CRITICAL: it logs every failed connection attempt), so this is what the operator sees.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.client import AIOKafkaClient

from app.settings import Settings
from app.transport.kafka import cancel_and_wait
from app.transport.kafka_security import connection_options

log = logging.getLogger(__name__)

PROBE_EVERY_S = 5.0
STALE_AFTER_S = 15.0


class BrokerProbe:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: AIOKafkaClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_ok: float | None = None
        self._down_since: float | None = None

    async def start(self) -> None:
        self._client = AIOKafkaClient(**connection_options(self.settings), request_timeout_ms=5000)
        self._task = asyncio.create_task(self._run(), name="broker-probe")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._client is not None:
            await self._client.close()

    def reachable(self) -> bool:
        return self._last_ok is not None and time.monotonic() - self._last_ok < STALE_AFTER_S

    async def _run(self) -> None:
        assert self._client is not None
        started = False
        while True:
            try:
                if not started:
                    await self._client.bootstrap()
                    started = True
                else:
                    async with asyncio.timeout(5.0):
                        await self._client.fetch_all_metadata()
            except Exception as exc:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning(
                        "broker unreachable at %s: %s",
                        self.settings.kafka_bootstrap,
                        f"{type(exc).__name__}: {exc}",
                    )
            else:
                if self._down_since is not None:
                    log.info(
                        "broker reachable again at %s after %.0f s",
                        self.settings.kafka_bootstrap,
                        time.monotonic() - self._down_since,
                    )
                    self._down_since = None
                self._last_ok = time.monotonic()
            await asyncio.sleep(PROBE_EVERY_S)
