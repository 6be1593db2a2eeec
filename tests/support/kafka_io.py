"""Test-side Kafka access: produce input records, read what the service wrote."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from app.settings import Settings
from app.transport.kafka import read_to_end


async def produce(
    settings: Settings, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
) -> None:
    prod = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
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
