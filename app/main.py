"""The Faust application: `faust -A app.main worker --without-web` (or `webhooks worker`).

`create_app(settings)` builds it; the module-level `app` is what `faust -A` loads.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from mode import Service

from app.agents.backfill import BackfillRunner
from app.agents.delivery import DeliveryManager
from app.agents.router import TAKE_MAX, TAKE_WITHIN_S, Router
from app.settings import Settings, get_settings
from app.topic_catalog import state_changelog_topic
from app.transport.registry import ConfigRegistry

log = logging.getLogger(__name__)


class WebhooksService(Service):  # type: ignore[misc]
    """Starts the config registry, then delivery; stops them in reverse, with the worker."""

    def __init__(
        self,
        registry: ConfigRegistry,
        router: Router,
        delivery: DeliveryManager,
        backfill: BackfillRunner,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registry = registry
        self.router = router
        self.delivery = delivery
        self.backfill = backfill

    async def on_start(self) -> None:
        await self.registry.start()
        await self.router.start()
        await self.delivery.start()
        await self.backfill.start()
        log.info("delivery ready: %d job(s) running", len(self.delivery.deliveries))

    async def on_stop(self) -> None:
        await self.backfill.stop()
        await self.delivery.stop()
        await self.router.stop()
        await self.registry.stop()


def create_app(settings: Settings) -> Any:
    """A Faust app wired to `settings`: router agent, state table, config registry."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{s}" for s in settings.bootstrap_servers],
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
    )
    registry = ConfigRegistry(settings)
    delivery = DeliveryManager(settings, registry)

    input_topic = app.topic(
        settings.input_topic, key_type=bytes, value_type=bytes, partitions=settings.input_partitions
    )
    state_table = app.Table(
        "user-state",
        partitions=settings.input_partitions,
        key_type=bytes,
        value_type=bytes,
        help="per-user audience membership and trigger-field fingerprints",
    )
    assert state_table.changelog_topic.get_topic_name() == state_changelog_topic(settings)
    router = Router(settings, registry, state_table)
    backfill = BackfillRunner(settings, registry)
    service = WebhooksService(
        registry, router, delivery, backfill, loop=app.loop, beacon=app.beacon
    )

    @app.task
    async def start_services() -> None:
        await app.add_runtime_dependency(service)

    @app.agent(input_topic, name="router")
    async def route_events(stream: Any) -> None:
        await registry.ready.wait()
        await router.ready.wait()
        log.info("router ready: %d job(s) loaded", len(registry.jobs))
        confirming = asyncio.create_task(router.confirm(stream.ack), name="router-confirm")
        try:
            async for events in stream.noack_take(TAKE_MAX, within=TAKE_WITHIN_S):
                await router.submit(events)
        finally:
            confirming.cancel()

    return app


app = create_app(get_settings())
