"""The Faust application: `faust -A app.main worker --without-web` (or `webhooks worker`).

`create_app(settings)` builds it; the module-level `app` is what `faust -A` loads. Faust
runs the worker and its services; the input topic is read by `InputConsumer` in whole
batches (see its docstring for why not through a Faust agent's per-message stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
from typing import Any

import faust
from faust.tables import TableManager
from mode import Service

from app.agents.backfill_service import BackfillService
from app.agents.delivery_service import DeliveryService
from app.agents.router_service import RouterService
from app.settings import Settings, get_settings
from app.topic_catalog import state_changelog_topic
from app.transport import tracing
from app.transport.broker_probe import BrokerProbe
from app.transport.health_server import HealthServer
from app.transport.input_consumer import InputConsumer
from app.transport.kafka import cancel_and_wait
from app.transport.kafka_security import faust_credentials
from app.transport.registry import ConfigRegistry
from app.transport.state_store import StateStore

log = logging.getLogger(__name__)


class NoTablesManager(TableManager):  # type: ignore[misc]
    """Faust's table manager without its one-second pause at start.

    Faust sleeps 1 s before starting recovery so that tables declared late can register.
    This app declares no Faust tables (the router's per-user state is its own store over
    its own changelog, `app/transport/state_store.py`), so the pause only delayed every
    worker start, restart and deploy by a second."""

    async def on_start(self) -> None:
        if len(self):  # someone declared a Faust table after all: keep Faust's behaviour
            await super().on_start()
        elif not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class WebhooksService(Service):  # type: ignore[misc]
    """Starts the config registry, then delivery; stops them in reverse, with the worker."""

    def __init__(
        self,
        settings: Settings,
        registry: ConfigRegistry,
        delivery: DeliveryService,
        backfill: BackfillService,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.registry = registry
        self.store = StateStore(settings, state_changelog_topic(settings))
        self.router = RouterService(settings, registry, self.store)
        self.input = InputConsumer(
            settings, self.router, self.store, on_fatal=self._fatal, on_ready=self._router_ready
        )
        self.delivery = delivery
        self.backfill = backfill
        self._confirming: asyncio.Task[None] | None = None
        self._fatal_error: str | None = None
        self.broker = BrokerProbe(settings)
        self.health = (
            HealthServer(
                settings.http_host, settings.http_port, lambda: self._fatal_error, self.not_ready
            )
            if settings.http_port
            else None
        )

    async def on_start(self) -> None:
        tracing.configure(self.settings.worker_id)  # off unless OTEL_* ask (checked by the CLI)
        if self.health is not None:
            await self.health.start()
        await self.broker.start()
        await self.registry.start()
        await self.registry.ready.wait()  # no record is routed before every job is known
        await self.router.start()
        self._confirming = asyncio.create_task(
            self.router.confirm(self.input.on_confirmed), name="router-confirm"
        )
        await self.input.start()
        await self.delivery.start()
        await self.backfill.start()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.dump_diagnostics)
        log.info("delivery ready: %d job(s) running", len(self.delivery.deliveries))

    async def on_stop(self) -> None:
        await self.backfill.stop()
        await self.input.stop()
        await cancel_and_wait(self._confirming)
        await self.delivery.stop()
        await self.router.stop()
        await self.registry.stop()
        await self.broker.stop()
        if self.health is not None:
            await self.health.stop()
        await tracing.stop()  # exports the spans still buffered, waiting 5 s at most

    def not_ready(self) -> list[str]:
        """What readiness still waits for (`/readyz`); empty when ready."""
        missing = []
        if not self.broker.reachable():
            missing.append("broker: not reachable")
        if not self.registry.ready.is_set():
            missing.append("configs: not loaded yet")
        if not self.input.assigned_once.is_set():
            missing.append("router: no input assignment yet")
        return missing

    def dump_diagnostics(self) -> None:
        """`kill -USR1 <pid>`: log each job's delivery state and every asyncio task's stack
        (for the person on call when a worker looks stuck)."""
        for job_id, job_delivery in self.delivery.deliveries.items():
            log.warning("diagnostics: job %s: %s", job_id, job_delivery.diagnostics())
        for task in asyncio.all_tasks():
            out = io.StringIO()
            task.print_stack(limit=8, file=out)
            log.warning("diagnostics: task %s:\n%s", task.get_name(), out.getvalue())

    def _router_ready(self, partitions: set[int]) -> None:
        if not self.input.assigned_once.is_set():
            log.info(
                "router ready: %d job(s) loaded, input partition(s) %s",
                len(self.registry.jobs),
                sorted(partitions),
            )

    async def _fatal(self, exc: BaseException) -> None:
        self._fatal_error = f"{type(exc).__name__}: {exc}"
        await self.crash(exc)


def create_app(settings: Settings) -> Any:
    """A Faust app wired to `settings`: config registry, router, delivery, backfill."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{s}" for s in settings.bootstrap_servers],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.input_partitions,
        topic_replication_factor=settings.topic_replication,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        producer_acks=-1,
        producer_linger=0.005,
        producer_max_batch_size=262144,
        broker_commit_interval=0.25,
        stream_buffer_maxsize=8192,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.kafka_session_timeout_s / 4),
        TableManager=NoTablesManager,
    )
    registry = ConfigRegistry(settings)
    delivery = DeliveryService(settings, registry)
    backfill = BackfillService(settings, registry)
    service = WebhooksService(
        settings, registry, delivery, backfill, loop=app.loop, beacon=app.beacon
    )

    @app.task
    async def start_services() -> None:
        await app.add_runtime_dependency(service)

    return app


app = create_app(get_settings())
