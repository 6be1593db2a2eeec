"""Kafka plumbing for the CLI and services: create topics, write a record and wait for the
broker's ack, read a compacted topic to its end. Connection failures become BrokerUnavailable
with the address, so commands can say what is wrong without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from app.settings import Settings
from app.topic_catalog import TopicSpec

TOPIC_ALREADY_EXISTS = 36


class BrokerUnavailable(RuntimeError):
    """Kafka could not be reached at the configured bootstrap servers."""

    def __init__(self, bootstrap: str, cause: BaseException) -> None:
        super().__init__(
            f"cannot reach Kafka at {bootstrap} ({type(cause).__name__}: {cause}). "
            "Is the broker running? Set WEBHOOKS_KAFKA_BOOTSTRAP to its address."
        )


@asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10000
    )
    try:
        await admin.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await admin.close()
        raise BrokerUnavailable(settings.kafka_bootstrap, exc) from None
    try:
        yield admin
    finally:
        await admin.close()


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec]) -> list[TopicSpec]:
    """Create the topics that do not exist yet; return those it created."""
    wanted = {s.name: s for s in specs}
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        missing = [s for name, s in wanted.items() if name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=settings.topic_replication,
                    topic_configs=s.broker_config(),
                )
                for s in missing
            ]
        )
        created = []
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(wanted[name])
            elif code != TOPIC_ALREADY_EXISTS:
                message = rest[0] if rest else ""
                raise RuntimeError(f"could not create topic {name}: error {code} {message}")
        await _wait_until_served(admin, {s.name: s.partitions for s in missing})
        return created


async def _wait_until_served(
    admin: AIOKafkaAdminClient, partitions: dict[str, int], timeout_s: float = 30.0
) -> None:
    """Return once the metadata shows every topic with all its partitions led.

    Creation is acknowledged before the metadata is: a consumer group that joins in between
    ignores the topic as missing and does not consume it until its next metadata refresh
    (minutes), which a fresh broker made easy to hit.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    pending = dict(partitions)
    while pending and asyncio.get_running_loop().time() < deadline:
        for topic in await admin.describe_topics(list(pending)):
            led = [p for p in topic.get("partitions", []) if p.get("leader", -1) >= 0]
            if topic.get("error_code") == 0 and len(led) >= pending.get(topic["topic"], 0):
                pending.pop(topic["topic"], None)
        if pending:
            await asyncio.sleep(0.2)
    if pending:
        raise RuntimeError(
            f"topics not served by the broker after {timeout_s:.0f} s: {sorted(pending)}"
        )


def durable_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """A producer whose acked records are on every in-sync replica, never duplicated by its
    own retries, and kept in order per partition (acks=all, idempotence)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
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
    try:
        await prod.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await prod.stop()
        raise BrokerUnavailable(settings.kafka_bootstrap, exc) from None
    try:
        yield prod
    finally:
        await prod.stop()


async def write_record(settings: Settings, topic: str, key: str, value: bytes | None) -> None:
    """Write one record and wait until the broker has it (acks=all)."""
    async with producer(settings) as prod:
        await prod.send_and_wait(topic, key=key.encode(), value=value)


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
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    try:
        await consumer.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await consumer.stop()
        raise BrokerUnavailable(settings.kafka_bootstrap, exc) from None
    try:
        all_partitions = consumer.partitions_for_topic(topic)
        if all_partitions is None:
            await consumer._client.force_metadata_update()
            all_partitions = consumer.partitions_for_topic(topic)
        if not all_partitions:
            return []
        wanted = partitions
        tps = [
            TopicPartition(topic, p)
            for p in sorted(all_partitions)
            if wanted is None or p in wanted
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


async def consumer_lag(settings: Settings, topic: str, group: str) -> int | None:
    """Records of `topic` that `group` has not committed past (None when unknown)."""
    try:
        async with admin_client(settings) as admin:
            committed = await admin.list_consumer_group_offsets(group)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
        finally:
            await consumer.stop()
    except (KafkaError, OSError):
        return None
    lag = 0
    for tp, end in ends.items():
        meta = committed.get(tp)
        lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
    return lag


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
        bootstrap_servers=settings.bootstrap_servers,
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


GROUP_ID_NOT_FOUND = 69
NON_EMPTY_GROUP = 68
UNKNOWN_TOPIC_OR_PARTITION = 3


async def delete_consumer_group(settings: Settings, group: str, timeout_s: float = 30.0) -> bool:
    """Delete a consumer group (its committed offsets); False if it did not exist.

    aiokafka 0.14's admin client has no `delete_consumer_groups`: this sends DeleteGroups to
    the group's coordinator. A group that still has members is retried until `timeout_s`
    (members leave when their consumer stops), then RuntimeError."""
    from aiokafka.protocol.admin import DeleteGroupsRequest

    deadline = asyncio.get_running_loop().time() + timeout_s
    async with admin_client(settings) as admin:
        while True:
            coordinator = await admin.find_coordinator(group)
            response = await admin._send_request(DeleteGroupsRequest([group]), coordinator)
            code = dict(response.results).get(group, 0)
            if code == 0:
                return True
            if code == GROUP_ID_NOT_FOUND:
                return False
            if asyncio.get_running_loop().time() >= deadline:
                what = "it still has members" if code == NON_EMPTY_GROUP else f"error {code}"
                raise RuntimeError(f"could not delete consumer group {group}: {what}")
            await asyncio.sleep(0.5)


async def delete_topic(settings: Settings, topic: str) -> bool:
    """Delete a topic; False if it did not exist."""
    async with admin_client(settings) as admin:
        response = await admin.delete_topics([topic])
        for name, code, *_ in response.topic_error_codes:
            if name != topic:
                continue
            if code == UNKNOWN_TOPIC_OR_PARTITION:
                return False
            if code != 0:
                raise RuntimeError(f"could not delete topic {topic}: error {code}")
        return True


async def consumer_group_exists(settings: Settings, group: str) -> bool:
    async with admin_client(settings) as admin:
        return group in {g[0] for g in await admin.list_consumer_groups()}
