"""The router: input records -> per-job queues, invalid records -> dead letters.

Invariant 1 lives here. Batches of input records come from `InputConsumer`; a batch is
confirmed (`on_confirmed`, which lets its offsets be committed) only after every record it
caused (queue records, dead letters, state changelog) has been acknowledged by the broker,
so a committed input offset never covers a record that is not durably queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from app.agents.baseline_establisher import BaselineEstablisher
from app.domain.deadletters import deadletter_value
from app.domain.erasure import Erasure, ErasureIds, erasure_record, log_entries
from app.domain.jobs import JobConfig
from app.domain.record_routing import OutRecord, Source, plan_record, truncated_copy
from app.domain.timefmt import rfc3339
from app.settings import Settings
from app.topic_catalog import erasures_topic
from app.transport import metrics, tracing
from app.transport.batch_producer import BatchWriter
from app.transport.kafka import durable_producer
from app.transport.registry import ConfigRegistry
from app.transport.state_store import StateStore
from app.transport.tracing import RouteTrace

log = logging.getLogger(__name__)

PIPELINE_DEPTH = 4
# Refusals that writing the same record again can never fix.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


@dataclass(slots=True)
class RoutedBatch:
    """Input records and every record they caused, with the broker acks still to come."""

    events: Sequence[Any]
    records: list[OutRecord]
    acks: list[asyncio.Future[Any]]


class RouterService:
    """Routes batches of input events; acks them once the broker has their records.

    Pipelined: while batch N's records are in flight, batch N+1 is routed. Records are
    computed once per batch (routing updates per-user state, so it must not run twice); if
    a write fails, that batch's records and every later batch's are written again, in order,
    so a user's events stay in order behind the duplicates, and only then acked.
    """

    def __init__(self, settings: Settings, registry: ConfigRegistry, store: StateStore) -> None:
        self.registry = registry
        self.store = store
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._in_flight: asyncio.Queue[RoutedBatch] = asyncio.Queue()
        self._slots = asyncio.Semaphore(PIPELINE_DEPTH)
        self._writing = asyncio.Lock()
        self._erasure_ids = ErasureIds.from_settings(settings)
        self._baselines = BaselineEstablisher(
            settings, registry, store, self._write, self._partitions.clear
        )

    async def start(self) -> None:
        self._producer = durable_producer(
            self.settings,
            linger_ms=2,
            max_batch_size=1024 * 1024,
            max_request_size=8 * 1024 * 1024,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def submit(self, events: Sequence[Any]) -> None:
        """Route input records (aiokafka `ConsumerRecord`s) and hand what they cause to the
        producer; confirmation follows in `confirm`."""
        await self._slots.acquire()
        try:
            with tracing.route_span(events, self.settings.input_topic) as traced:
                async with self._writing:
                    await self._baselines.ensure(events)
                    records = self._route(events, traced)
                    acks = await self._write(records)
        except BaseException:
            self._slots.release()
            raise
        self._in_flight.put_nowait(RoutedBatch(events, records, acks))

    async def drain(self) -> None:
        """Return once every submitted batch is confirmed."""
        for _ in range(PIPELINE_DEPTH):
            await self._slots.acquire()
        for _ in range(PIPELINE_DEPTH):
            self._slots.release()

    async def confirm(self, on_confirmed: Callable[[Sequence[Any]], None]) -> None:
        """Forever: wait for each batch's broker acks, in order, then confirm its records."""
        while True:
            batch = await self._in_flight.get()
            done = [batch]
            try:
                await asyncio.gather(*batch.acks)
            except Exception as exc:
                log.error("writing routed records failed (%r); writing them again", exc)
                done = await self._rewrite_from(batch, isolate=isinstance(exc, TOO_LARGE))
            for routed in done:
                on_confirmed(routed.events)
                self._slots.release()

    async def _rewrite_from(self, failed: RoutedBatch, isolate: bool) -> list[RoutedBatch]:
        async with self._writing:  # nothing new is written until the rewrite has landed
            batches = [failed]
            while not self._in_flight.empty():
                batches.append(self._in_flight.get_nowait())
            for later in batches[1:]:
                await asyncio.gather(*later.acks, return_exceptions=True)
            records = [r for b in batches for r in b.records]
            if isolate:  # a record the broker refuses as too large: find it, one by one
                records = await self._write_one_by_one(records)
                if not records:
                    return batches
            while True:
                try:
                    await asyncio.gather(*await self._write(records))
                    return batches
                except TOO_LARGE as exc:
                    log.error("the broker refused a record as too large (%r); isolating it", exc)
                    records = await self._write_one_by_one(records)
                except Exception as exc:
                    log.error(
                        "rewrite of %d record(s) failed (%r); retrying in 1 s", len(records), exc
                    )
                    self._partitions.clear()
                    await asyncio.sleep(1.0)

    async def _write_one_by_one(self, records: list[OutRecord]) -> list[OutRecord]:
        """Write `records` in order, one at a time; one the broker refuses as too large (its
        topic allows less than the service's limits) is replaced by a dead letter holding a
        truncated copy. Returns the records still to write (none unless another error)."""
        assert self._producer is not None
        for i, (topic, key, value, partition) in enumerate(records):
            try:
                await self._producer.send_and_wait(topic, value, key=key, partition=partition)
            except TOO_LARGE as exc:
                log.error("record for %s refused as too large (%r); dead-lettered", topic, exc)
                letter = deadletter_value(
                    job_id=None,
                    reason=f"record for topic {topic} refused by the broker: {exc!r}",
                    event=truncated_copy(value),
                )
                await self._producer.send_and_wait(self.settings.deadletter_topic, letter, key=key)
            except Exception:
                return records[i:]
        return []

    async def _write(self, records: list[OutRecord]) -> list[asyncio.Future[Any]]:
        assert self._producer is not None
        out = BatchWriter(self._producer, self._partitions)
        await out.learn_partitions(topic for topic, _, _, partition in records if partition is None)
        for topic, key, value, partition in records:
            await out.add(topic, key, value, partition)
        return await out.flush()

    def _route(self, events: Sequence[Any], traced: RouteTrace | None = None) -> list[OutRecord]:
        """The records `events` cause; updates the per-user state as it goes.

        Each record is planned on its own (`plan_record` never raises), so a hostile record
        becomes a dead letter and the rest of its batch is routed. With traces on, each
        queue record carries its input record's trace context (`traced`)."""
        out: list[OutRecord] = []
        jobs = {job_id: j.config for job_id, j in self.registry.jobs.items()}
        dl_topic = self.settings.deadletter_topic
        changelog = self.store.changelog_topic
        maps: dict[int, dict[bytes, bytes]] = {}
        now = time.time()
        now_text = rfc3339(now) or ""
        dead_lettered = 0
        for index, message in enumerate(events):
            data = maps.get(message.partition)
            if data is None:
                data = maps[message.partition] = self.store.partition(message.partition)
            source = Source(
                message.topic,
                message.partition,
                message.offset,
                traced.context_of(index) if traced is not None else None,
            )
            plan = plan_record(
                message.value,
                message.key,
                source,
                data.get,
                jobs,
                dl_topic,
                changelog,
                now_text,
            )
            plan.apply_to(data)
            if plan.dead_lettered:
                dead_lettered += 1
            elif plan.erasure is not None:
                out.extend(self._erasure_records(plan.erasure, jobs, now, now_text))
            out.extend(plan.records)
        metrics.INPUT_ROUTED.inc(len(events))
        if dead_lettered:
            metrics.INPUT_DEAD_LETTERED.inc(dead_lettered)
        metrics.STATE_ENTRIES.set(self.store.size())
        if traced is not None:
            traced.routed(len(out), dead_lettered)
        return out

    def _erasure_records(
        self, erasure: Erasure, jobs: dict[str, JobConfig], now: float, now_text: str
    ) -> list[OutRecord]:
        """The erasure record and the affected jobs' `erased` log entries: written with the
        batch's other records, so they are durable before the tombstone's offset is
        committed."""
        ids = self._erasure_ids
        out: list[OutRecord] = [
            (
                erasures_topic(self.settings),
                ids.record_key(erasure.user_id),
                erasure_record(erasure, ids, now, now_text),
                None,
            )
        ]
        for item in log_entries(erasure, jobs, ids, self.settings.worker_id, now):
            out.append((self.settings.job_log_topic, item.job_id.encode(), item.to_bytes(), None))
        metrics.USERS_ERASED.labels("known" if erasure.known else "unknown").inc()
        metrics.ERASURE_EXITS.inc(sum(len(j.event_ids) for j in erasure.jobs))
        log.info(
            "user erased (erasure id %s, tombstone at %s[%d]@%d): %s",
            ids.erasure_id(erasure.user_id),
            *erasure.source,
            ", ".join(f"job {j.job_id}: {len(j.event_ids)} exit(s)" for j in erasure.jobs)
            or "in no job's audiences",
        )
        return out
