"""The job-log topic: workers append entries (`JobLog`), `webhooks jobs logs` reads them.

Writing never holds up delivery: an entry is handed to the producer and its ack is not
awaited by the caller; one that cannot be written is reported in the worker's own log (the
event it describes is on the dead-letter topic or in the job's status anyway).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.domain.job_log import JobLogEntry, entry, own_words, parse_entry
from app.settings import Settings
from app.transport.kafka import key_partition, topic_partitions
from app.transport.kafka_security import connection_options

log = logging.getLogger(__name__)


class JobLog:
    """Appends entries for this worker to the job-log topic."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer) -> None:
        self.topic = settings.job_log_topic
        self.worker_id = settings.worker_id
        self.producer = producer
        self._pending: set[asyncio.Future[Any]] = set()

    async def write(
        self,
        job_id: str,
        kind: str,
        message: str,
        outside: str | tuple[str, ...] | None = None,
        **details: Any,
    ) -> None:
        """Append an entry; `outside`: text in `message` and the `reason` detail that came
        from outside (an answer, a template's or an exception's message), kept out of it."""
        if outside:
            message = own_words(message, outside)
            if isinstance(details.get("reason"), str):
                details["reason"] = own_words(details["reason"], outside)
        item = entry(job_id, self.worker_id, kind, message, time.time(), **details)
        try:
            ack = await self.producer.send(self.topic, item.to_bytes(), key=job_id.encode())
        except Exception as exc:
            log.warning("job %s: job log entry not written (%s): %s", job_id, exc, message[:200])
            return
        self._pending.add(ack)
        ack.add_done_callback(lambda f: self._done(f, job_id, message))

    def _done(self, ack: asyncio.Future[Any], job_id: str, message: str) -> None:
        self._pending.discard(ack)
        if not ack.cancelled() and ack.exception() is not None:
            log.warning(
                "job %s: job log entry not written (%s): %s",
                job_id,
                ack.exception(),
                message[:200],
            )

    async def flush(self) -> None:
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=5.0)


async def read_keyed(
    settings: Settings, topic: str, key: bytes, since: float | None = None, follow: bool = False
) -> AsyncIterator[Any]:
    """The records with `key` on `topic` (aiokafka `ConsumerRecord`s), in offset order, from
    the first written at or after `since` (unix seconds) or the oldest kept; with `follow`,
    then every new one until cancelled. Records keyed by one id (a job's log entries, its
    dead letters) all sit on the partition that key maps to: only that one is read."""
    consumer = AIOKafkaConsumer(
        **connection_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    await consumer.start()
    try:
        everywhere = await topic_partitions(consumer, topic)
        if not everywhere:
            return
        tps = [everywhere[key_partition(key, len(everywhere))]]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        if since is not None:
            found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
            for tp in tps:
                at = found.get(tp)
                starts[tp] = at.offset if at is not None else ends[tp]
        for tp in tps:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        while remaining or follow:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    if record.key == key:
                        yield record
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


async def read_job_log(
    settings: Settings, job_id: str, since: float | None = None, follow: bool = False
) -> AsyncIterator[JobLogEntry]:
    """The job's entries in the order written (per worker; entries of all workers of a job
    share one partition, so in the order the broker got them), from `since` (unix seconds)
    or the oldest kept; with `follow`, then every new one until cancelled."""
    records = read_keyed(settings, settings.job_log_topic, job_id.encode(), since, follow)
    async for record in records:
        item = parse_entry(record.value)
        if item is not None and (since is None or item.time >= since):
            yield item
