"""Test-side Kafka access: produce input records, read what the service wrote."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.settings import Settings
from app.transport.kafka import read_to_end
from app.transport.kafka_admin import admin_client
from app.transport.kafka_security import connection_options
from tests.support.polling import eventually


async def produce(
    settings: Settings,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None]],
    headers: Sequence[tuple[str, bytes]] | None = None,
) -> None:
    """Write `records` (key, value), each with `headers` if given, and wait for the acks."""
    prod = AIOKafkaProducer(
        **connection_options(settings),
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await prod.start()
    try:
        for key, value in records:
            await prod.send(topic, key=key, value=value, headers=list(headers or ()) or None)
        await prod.flush()
    finally:
        await prod.stop()


async def read_json(settings: Settings, topic: str) -> list[tuple[str | None, Any]]:
    rows = await read_to_end(settings, topic)
    return [
        (k.decode() if k else None, orjson.loads(v) if v is not None else None) for k, v, _ in rows
    ]


async def wait_for_records(
    settings: Settings, topic: str, count: int, wait_s: float = 30.0
) -> list[tuple[str | None, Any]]:
    """Poll `topic` until it holds at least `count` records (or time out with what it has)."""
    return await eventually(
        lambda: read_json(settings, topic),
        lambda rows: len(rows) >= count,
        wait_s=wait_s,
        interval_s=0.5,
        what=lambda rows: (
            f"{topic}: expected {count} records, found {len(rows or [])}: {(rows or [])[:5]}"
        ),
    )


async def commits_and_ends(
    settings: Settings, topic: str, group: str
) -> dict[int, tuple[int | None, int]]:
    """Per partition of `topic`: (offset `group` committed or None, end offset)."""
    async with admin_client(settings) as admin:
        committed = await admin.list_consumer_group_offsets(group)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    out: dict[int, tuple[int | None, int]] = {}
    for tp, end in ends.items():
        meta = committed.get(tp)
        out[tp.partition] = (meta.offset if meta is not None and meta.offset >= 0 else None, end)
    return out


async def wait_for_commits_at_end(
    settings: Settings, topic: str, group: str, wait_s: float = 120.0
) -> dict[int, tuple[int | None, int]]:
    """Poll until `group` has committed every partition of `topic` to its end offset."""
    return await eventually(
        lambda: commits_and_ends(settings, topic, group),
        lambda state: bool(state) and all(c == end for c, end in state.values()),
        wait_s=wait_s,
        interval_s=1.0,
        what=lambda state: f"{topic}: {group} did not commit to the end: {state}",
    )


async def wait_for_dead_letters(
    settings: Settings,
    keep: Callable[[str | None, Any], bool],
    count: int,
    wait_s: float = 60.0,
) -> list[tuple[str | None, Any]]:
    """Poll the dead-letter topic until `count` letters pass `keep(key, doc)`; return them."""

    async def letters() -> list[tuple[str | None, Any]]:
        return [
            (k, d) for k, d in await read_json(settings, settings.deadletter_topic) if keep(k, d)
        ]

    return await eventually(
        letters,
        lambda found: len(found) >= count,
        wait_s=wait_s,
        interval_s=0.5,
        what=lambda found: (
            f"expected {count} dead letters, found {len(found or [])}: {(found or [])[:3]}"
        ),
    )
