"""The router agent: input records -> per-job queues, invalid records -> dead letters.

Invariant 1 lives here. Events are taken with `noack_take` and acked only after every record
they caused (queue records, dead letters, state changelog) has been acknowledged by the
broker, so a committed input offset never covers an event that is not durably queued.
Errors never escape the loop: an exception in an agent would ack and skip the event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from app.agents.deadletter import deadletter_value, raw_event
from app.domain.errors import InvalidRecord
from app.domain.records import UserRecord, parse_record
from app.domain.routing import UserState, route
from app.settings import Settings
from app.transport.batch_producer import BatchWriter
from app.transport.kafka import durable_producer
from app.transport.registry import ConfigRegistry

log = logging.getLogger(__name__)

TAKE_MAX = 1000
TAKE_WITHIN_S = 0.01
PIPELINE_DEPTH = 4

OutRecord = tuple[str, bytes | None, bytes, int | None]  # topic, key, value, partition


def event_id(topic: str, partition: int, offset: int, job_id: str) -> str:
    """Stable across redeliveries of the same input offset, so duplicates are recognisable."""
    raw = f"{topic}/{partition}/{offset}/{job_id}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def queue_value(
    record: UserRecord, job_id: str, ev_id: str, events: tuple[dict[str, Any], ...]
) -> bytes:
    return orjson.dumps(
        {
            "event_id": ev_id,
            "job_id": job_id,
            "time": record.timestamp,
            "user": {
                "id": record.id,
                "data": record.data,
                "by_fields": record.by_fields,
                "segment_events": events,
            },
        }
    )


@dataclass(slots=True)
class RoutedBatch:
    """Input events and every record they caused, with the broker acks still to come."""

    events: list[Any]
    records: list[OutRecord]
    acks: list[asyncio.Future[Any]]


class Router:
    """Routes batches of input events; acks them once the broker has their records.

    Pipelined: while batch N's records are in flight, batch N+1 is routed. Records are
    computed once per batch (routing updates per-user state, so it must not run twice); if
    a write fails, that batch's records and every later batch's are written again, in order,
    so a user's events stay in order behind the duplicates, and only then acked.
    """

    def __init__(self, settings: Settings, registry: ConfigRegistry, state_table: Any) -> None:
        self.registry = registry
        self.table = state_table
        self.settings = settings
        self.ready = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._in_flight: asyncio.Queue[RoutedBatch] = asyncio.Queue()
        self._slots = asyncio.Semaphore(PIPELINE_DEPTH)
        self._writing = asyncio.Lock()

    async def start(self) -> None:
        self._producer = durable_producer(
            self.settings,
            linger_ms=2,
            max_batch_size=1024 * 1024,
            max_request_size=8 * 1024 * 1024,
        )
        await self._producer.start()
        self.ready.set()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def submit(self, events: list[Any]) -> None:
        """Route `events` and hand their records to the producer; acks follow in `confirm`."""
        await self._slots.acquire()
        async with self._writing:
            records = self._route(events)
            acks = await self._write(records)
            self._in_flight.put_nowait(RoutedBatch(events, records, acks))

    async def confirm(self, ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Forever: wait for each batch's broker acks, in order, then ack its input events."""
        while True:
            batch = await self._in_flight.get()
            done = [batch]
            try:
                await asyncio.gather(*batch.acks)
            except Exception:
                log.exception("writing routed records failed; writing them again")
                done = await self._rewrite_from(batch)
            for routed in done:
                for event in routed.events:
                    await ack(event)
                self._slots.release()

    async def _rewrite_from(self, failed: RoutedBatch) -> list[RoutedBatch]:
        async with self._writing:  # nothing new is written until the rewrite has landed
            batches = [failed]
            while not self._in_flight.empty():
                batches.append(self._in_flight.get_nowait())
            for later in batches[1:]:
                await asyncio.gather(*later.acks, return_exceptions=True)
            records = [r for b in batches for r in b.records]
            while True:
                try:
                    await asyncio.gather(*await self._write(records))
                    return batches
                except Exception as exc:
                    log.error(
                        "rewrite of %d record(s) failed (%s); retrying in 1 s", len(records), exc
                    )
                    self._partitions.clear()
                    await asyncio.sleep(1.0)

    async def _write(self, records: list[OutRecord]) -> list[asyncio.Future[Any]]:
        assert self._producer is not None
        out = BatchWriter(self._producer, self._partitions)
        for topic, key, value, partition in records:
            await out.add(topic, key, value, partition)
        return await out.flush()

    def _route(self, events: list[Any]) -> list[OutRecord]:
        """The records `events` cause; updates the per-user state table as it goes."""
        out: list[OutRecord] = []
        jobs = [j.config for j in self.registry.jobs.values()]
        dl_topic = self.settings.deadletter_topic
        changelog = self.table.changelog_topic.get_topic_name()
        data = self.table.data
        for event in events:
            message = event.message
            try:
                record = parse_record(event.value)
            except InvalidRecord as exc:
                value = deadletter_value(
                    job_id=None,
                    reason=f"invalid input record: {exc.reason}",
                    event=raw_event(event.value),
                    source=(message.topic, message.partition, message.offset),
                )
                out.append((dl_topic, message.key, value, None))
                continue
            key = record.id.encode()
            stored = data.get(key)
            state = UserState.from_bytes(stored)
            routed, new_state = route(record, state, jobs)
            if new_state.audiences:
                new_state.last = (message.partition, message.offset)
            for job_event in routed:
                job = self.registry.jobs.get(job_event.job_id)
                if job is None:
                    continue
                ev_id = event_id(message.topic, message.partition, message.offset, job.config.id)
                value = queue_value(record, job.config.id, ev_id, job_event.segment_events)
                out.append((job.config.queue_topic, key, value, None))
            raw_state = new_state.to_bytes()
            if raw_state != stored:
                # The record Faust's own changelog write would make (same topic, key and
                # partition), but acknowledged before the input offset is acked.
                data[key] = raw_state
                out.append((changelog, key, raw_state, message.partition))
        return out
