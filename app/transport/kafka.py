"""Kafka clients for the CLI and services: durable producers, write a record and wait for the
broker's ack, read a topic (or a compacted topic's view) to its end, read given offsets.
Administration (topics, groups, lag) is in `kafka_admin.py`. Connection failures become
BrokerUnavailable with the address, so commands can say what is wrong without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.partitioner import murmur2

from app.domain.compaction import latest_values
from app.settings import Settings
from app.transport.kafka_security import connection_options, diagnose


class BrokerUnavailable(RuntimeError):
    """Kafka could not be reached, or refused the connection, at the bootstrap servers."""

    def __init__(self, bootstrap: str, cause: BaseException, reason: str | None = None) -> None:
        if reason:
            super().__init__(f"cannot connect to Kafka: {reason}")
        else:
            super().__init__(
                f"cannot reach Kafka at {bootstrap} ({type(cause).__name__}: {cause}). "
                "Is the broker running? Set WEBHOOKS_KAFKA_BOOTSTRAP to its address."
            )


async def start_client(settings: Settings, client: Any) -> None:
    """Start an aiokafka producer, consumer or admin client; if it cannot, stop it and raise
    BrokerUnavailable saying why (aiokafka itself only says "Unable to bootstrap"). A start
    that "succeeds" without any broker in the metadata (what a rejected OAUTHBEARER token
    gives) counts as a failure too."""
    stop = client.close if isinstance(client, AIOKafkaAdminClient) else client.stop
    try:
        await client.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await stop()
        raise BrokerUnavailable(settings.kafka_bootstrap, exc, await diagnose(settings)) from None
    inner = getattr(client, "_client", None) or client.client
    if not inner.cluster.brokers():
        await stop()
        empty = KafkaConnectionError("the bootstrap metadata lists no broker")
        raise BrokerUnavailable(settings.kafka_bootstrap, empty, await diagnose(settings))


def durable_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """A producer whose acked records are on every in-sync replica, never duplicated by its
    own retries, and kept in order per partition (acks=all, idempotence)."""
    return AIOKafkaProducer(
        **connection_options(settings),
        acks="all",
        enable_idempotence=True,
        **{"linger_ms": 5, "request_timeout_ms": 40000, **options},
    )


def group_timeouts(settings: Settings) -> dict[str, int]:
    """Consumer-group liveness settings: a dead worker's partitions move after the session."""
    session_s = settings.kafka_session_timeout_s
    return {
        "session_timeout_ms": int(session_s * 1000),
        "heartbeat_interval_ms": int(max(1.0, session_s / 4) * 1000),
    }


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def producer(settings: Settings, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    prod = durable_producer(settings, request_timeout_ms=15000, **options)
    await start_client(settings, prod)
    try:
        yield prod
    finally:
        await prod.stop()


async def write_record(settings: Settings, topic: str, key: str, value: bytes | None) -> None:
    """Write one record and wait until the broker has it (acks=all)."""
    async with producer(settings) as prod:
        await prod.send_and_wait(topic, key=key.encode(), value=value)


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Fetch cluster metadata now. aiokafka has no public call for it: a consumer that was
    not subscribed to a topic (we assign partitions by hand) knows nothing of it until its
    next periodic refresh (`metadata_max_age_ms`, 5 min), so `partitions_for_topic` would
    say None for a topic that exists. The one use of the private `_client` in the project."""
    await consumer._client.force_metadata_update()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of `topic`, sorted (none when it does not exist), fetching metadata
    first when the consumer does not know the topic yet."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await refresh_metadata(consumer)
        parts = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(parts or ())]


def key_partition(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner (the Java client's, and aiokafka's) gives
    `key` among `count`: murmur2 of the key, made positive, modulo the count."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % count


async def read_to_end(
    settings: Settings,
    topic: str,
    timeout_s: float = 30.0,
    partitions: set[int] | None = None,
) -> list[tuple[bytes | None, bytes | None, int]]:
    """Every record of `topic` (or of some of its `partitions`) from its start to the end
    offsets seen on entry.

    Returns (key, value, timestamp_ms) in partition order; no consumer group is used.
    """
    consumer = AIOKafkaConsumer(
        **connection_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    await start_client(settings, consumer)
    try:
        tps = [
            tp
            for tp in await topic_partitions(consumer, topic)
            if partitions is None or tp.partition in partitions
        ]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes | None, int]] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        async with asyncio.timeout(timeout_s):
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=500)
                for messages in batches.values():
                    out.extend((m.key, m.value, m.timestamp) for m in messages)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


async def read_compacted(
    settings: Settings, topic: str, partitions: set[int] | None = None, timeout_s: float = 30.0
) -> dict[bytes, bytes]:
    """The current view of a compacted topic (or of some of its partitions): the last value
    per key up to the end offsets seen on entry, deleted keys left out."""
    rows = await read_to_end(settings, topic, timeout_s=timeout_s, partitions=partitions)
    return latest_values((key, value) for key, value, _ in rows)


async def read_offsets(
    settings: Settings, topic: str, partition: int, offsets: set[int], timeout_s: float = 300.0
) -> dict[int, bytes | None]:
    """The values at `offsets` of one partition, read in one sequential pass; offsets no
    longer in the log (retention) are left out."""
    out: dict[int, bytes | None] = {}
    async for chunk in iter_offsets(settings, topic, partition, offsets, timeout_s):
        out.update(chunk)
    return out


async def iter_offsets(
    settings: Settings, topic: str, partition: int, offsets: set[int], timeout_s: float = 300.0
) -> AsyncIterator[list[tuple[int, bytes | None]]]:
    """`read_offsets` in chunks of (offset, value), so a caller need not hold them all."""
    if not offsets:
        return
    consumer = AIOKafkaConsumer(
        **connection_options(settings),
        enable_auto_commit=False,
        request_timeout_ms=15000,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        first = max(min(offsets), (await consumer.beginning_offsets([tp]))[tp])
        last = min(max(offsets), (await consumer.end_offsets([tp]))[tp] - 1)
        if first > last:
            return
        consumer.seek(tp, first)
        async with asyncio.timeout(timeout_s):
            while await consumer.position(tp) <= last:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=10_000)
                chunk = [(m.offset, m.value) for m in batch.get(tp, []) if m.offset in offsets]
                if chunk:
                    yield chunk
    finally:
        await consumer.stop()
