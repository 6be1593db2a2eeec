"""Backfill runner: sends a job's current audience members as `enter` events.

Requests (`webhooks jobs backfill ID`, or a new job with `existing_users: true`) land on the
backfills topic; one worker at a time takes each (consumer group, one partition). For every
partition of the router's compacted state changelog it takes the compacted view, picks the
job's current members, reads each member's latest profile from the input topic (the state
keeps a pointer, not the profile), and writes `enter` events into the job's queue. After
each partition, progress is written durably; the request's offset is committed only when
all partitions are done, so a crash resumes at the first partition not done. Live events
keep flowing meanwhile: this runs beside the router, not in it. A member erased while its
partition is read (README, "Deleting users") is dropped before the writing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.domain.backfill import (
    BackfillProgress,
    Member,
    backfill_event_id,
    current_members,
    progress_record,
)
from app.domain.erasure import ErasureIds, parse_erasures
from app.domain.errors import InvalidRecord
from app.domain.jobs import JobConfig
from app.domain.queue_record import queue_value
from app.domain.records import UserRecord, parse_record
from app.domain.timefmt import utc_now_rfc3339
from app.settings import Settings
from app.topic_catalog import erasures_topic, state_changelog_topic
from app.transport.batch_producer import BatchWriter
from app.transport.job_log import JobLog
from app.transport.kafka import (
    cancel_and_wait,
    durable_producer,
    group_timeouts,
    read_compacted,
    read_offsets,
)
from app.transport.kafka_security import connection_options
from app.transport.registry import ConfigRegistry

log = logging.getLogger(__name__)

# An erasure's time comes from the clock of the worker that routed it.
ERASURE_CLOCK_SLACK_S = 30.0


def _erased_at(doc: dict[str, object]) -> float:
    ts = doc.get("ts")
    return float(ts) if isinstance(ts, int | float) else float("inf")  # unreadable: assume now


class BackfillService:
    def __init__(self, settings: Settings, registry: ConfigRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: dict[str, int] = {}
        self._joblog: JobLog | None = None
        self._erasure_ids = ErasureIds.from_settings(settings)

    async def start(self) -> None:
        self._producer = durable_producer(self.settings, max_batch_size=1024 * 1024)
        await self._producer.start()
        self._joblog = JobLog(self.settings, self._producer)
        self._consumer = AIOKafkaConsumer(
            self.settings.backfills_topic,
            **connection_options(self.settings),
            group_id=f"{self.settings.app_id}-backfill",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=24 * 3600 * 1000,  # one request may take long
            **group_timeouts(self.settings),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="backfill")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        await self.registry.ready.wait()
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batches.items():
                for message in messages:
                    while True:
                        try:
                            await self._handle(message.key, message.value)
                            break
                        except asyncio.CancelledError:
                            raise
                        except Exception:
                            log.exception("backfill failed; resuming it in 5 s")
                            await asyncio.sleep(5.0)
                    await consumer.commit({tp: message.offset + 1})

    async def _handle(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        try:
            request = orjson.loads(value)
            job_id, request_id = str(request["job_id"]), str(request["id"])
        except (ValueError, KeyError, TypeError):
            log.error("skipping unreadable backfill request %r", key)
            return
        stored = self.registry.jobs.get(job_id)
        if stored is None:
            log.warning("backfill %s: job %s does not exist (any more)", request_id, job_id)
            return
        progress = await self._load_progress(job_id)
        if progress is None or progress.request_id != request_id:
            progress = BackfillProgress(request_id=request_id)
        if progress.state == "done":
            return
        changelog = state_changelog_topic(self.settings)
        assert self._producer is not None
        partitions = sorted(await self._producer.partitions_for(changelog))
        progress.total_partitions = len(partitions)
        log.info("backfill %s of job %s: %d partition(s)", request_id, job_id, len(partitions))
        assert self._joblog is not None
        await self._joblog.write(
            job_id,
            "backfill",
            f"backfill {request_id} started on worker {self.settings.worker_id}"
            + (
                f" (resumed, {len(progress.partitions_done)} partition(s) done)"
                if progress.partitions_done
                else ""
            ),
            request_id=request_id,
            members=progress.members_sent,
        )
        for partition in partitions:
            if partition in progress.partitions_done:
                continue
            sent = await self._backfill_partition(stored.config, request_id, changelog, partition)
            progress.partitions_done.append(partition)
            progress.members_sent += sent
            progress.updated_at = time.time()
            await self._write_progress(job_id, progress)
            if self.settings.backfill_partition_pause_s:
                await asyncio.sleep(self.settings.backfill_partition_pause_s)
        progress.state = "done"
        progress.updated_at = time.time()
        await self._write_progress(job_id, progress)
        log.info(
            "backfill %s of job %s done: %d member(s)", request_id, job_id, progress.members_sent
        )
        await self._joblog.write(
            job_id,
            "backfill",
            f"backfill {request_id} done: {progress.members_sent} member(s) sent",
            request_id=request_id,
            members=progress.members_sent,
        )

    async def _backfill_partition(
        self, job: JobConfig, request_id: str, changelog: str, partition: int
    ) -> int:
        started = time.time()
        states = await read_compacted(self.settings, changelog, {partition}, timeout_s=3600)
        members = current_members(states, job)
        if not members:
            return 0
        profiles = await self._profiles(members)
        members = await self._not_erased_since(members, started - ERASURE_CLOCK_SLACK_S)
        if not members:
            return 0
        assert self._producer is not None
        out = BatchWriter(self._producer, self._partitions)
        now = utc_now_rfc3339()
        for member in members:
            record = profiles.get(member.user_id) or UserRecord(
                id=member.user_id, data={}, segment_events=(), by_fields={}, timestamp=None
            )
            event = {
                "id": member.segment_id,
                "slug": member.slug,
                "event": "enter",
                "enter": now,
                "backfill": True,
            }
            ev_id = backfill_event_id(request_id, job.id, member.user_id)
            value = queue_value(record, job.id, ev_id, (event,))
            await out.add(job.queue_topic, member.user_id.encode(), value)
        await asyncio.gather(*await out.flush())
        return len(members)

    async def _not_erased_since(self, members: list[Member], since: float) -> list[Member]:
        """`members` without those erased since `since`: a user erased while this partition
        was read is in the state read, but must not be sent after its exit."""
        view = parse_erasures(await read_compacted(self.settings, erasures_topic(self.settings)))
        recent = {key for key, doc in view.items() if _erased_at(doc) >= since}
        if not recent:
            return members
        kept = [
            m
            for m in members
            if not any(
                k.decode() in recent for k in self._erasure_ids.record_keys(m.user_id).values()
            )
        ]
        if len(kept) < len(members):
            log.info("backfill: %d member(s) erased meanwhile, not sent", len(members) - len(kept))
        return kept

    async def _profiles(self, members: list[Member]) -> dict[str, UserRecord]:
        """Each member's latest input record, read from where the state points."""
        wanted: dict[int, dict[int, str]] = defaultdict(dict)
        for member in members:
            if member.last is not None:
                wanted[member.last[0]][member.last[1]] = member.user_id
        out: dict[str, UserRecord] = {}
        for partition, by_offset in wanted.items():
            values = await read_offsets(
                self.settings, self.settings.input_topic, partition, set(by_offset)
            )
            for offset, raw in values.items():
                try:
                    out[by_offset[offset]] = parse_record(raw)
                except InvalidRecord:
                    continue
        return out

    async def _load_progress(self, job_id: str) -> BackfillProgress | None:
        view = await read_compacted(self.settings, self.settings.backfill_progress_topic)
        value = view.get(job_id.encode())
        return BackfillProgress.from_dict(orjson.loads(value)) if value else None

    async def _write_progress(self, job_id: str, progress: BackfillProgress) -> None:
        assert self._producer is not None
        doc = progress_record(job_id, progress)
        await self._producer.send_and_wait(
            self.settings.backfill_progress_topic, orjson.dumps(doc), key=job_id.encode()
        )
