"""Test-side Kafka access: produce input records, read what the service wrote."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.settings import Settings
from app.transport.kafka import admin_client, read_to_end


async def produce(
    settings: Settings, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
) -> None:
    prod = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await prod.start()
    try:
        for key, value in records:
            await prod.send(topic, key=key, value=value)
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
    deadline = time.monotonic() + wait_s
    rows: list[tuple[str | None, Any]] = []
    while time.monotonic() < deadline:
        rows = await read_json(settings, topic)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.5)
    raise AssertionError(f"{topic}: expected {count} records, found {len(rows)}: {rows[:5]}")


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
    deadline = time.monotonic() + wait_s
    state: dict[int, tuple[int | None, int]] = {}
    while time.monotonic() < deadline:
        state = await commits_and_ends(settings, topic, group)
        if state and all(c == end for c, end in state.values()):
            return state
        await asyncio.sleep(1.0)
    raise AssertionError(f"{topic}: {group} did not commit to the end: {state}")


async def wait_for_dead_letters(
    settings: Settings,
    keep: Callable[[str | None, Any], bool],
    count: int,
    wait_s: float = 60.0,
) -> list[tuple[str | None, Any]]:
    """Poll the dead-letter topic until `count` letters pass `keep(key, doc)`; return them."""
    deadline = time.monotonic() + wait_s
    found: list[tuple[str | None, Any]] = []
    while time.monotonic() < deadline:
        found = [
            (k, d) for k, d in await read_json(settings, settings.deadletter_topic) if keep(k, d)
        ]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"expected {count} dead letters, found {len(found)}: {found[:3]}")
