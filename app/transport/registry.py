"""Every worker's view of all jobs and authorizations, read from their compacted topics.

No consumer group: each worker assigns itself every partition, reads from the start to the
end offsets (then `ready` is set) and keeps tailing, so a job applied anywhere reaches every
worker within one poll. Invalid records are logged and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.domain.authorizations import load_stored_authorization
from app.domain.secrets import SecretBox, SecretKeyError, box_from_settings
from app.domain.stored_job import StoredJob
from app.settings import Settings
from app.transport.kafka import cancel_and_wait, refresh_metadata
from app.transport.kafka_security import connection_options

log = logging.getLogger(__name__)

JobListener = Callable[[str, StoredJob | None], None]


class ConfigRegistry:
    """Live map of job id -> StoredJob and authorization id -> stored authorization record."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs: dict[str, StoredJob] = {}
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.ready = asyncio.Event()
        self._listeners: list[JobListener] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, listener: JobListener) -> None:
        """Call `listener(job_id, job or None)` on every change after this point."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="config-registry")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _assign(self) -> dict[TopicPartition, int]:
        consumer = self._consumer
        assert consumer is not None
        topics = (self.settings.jobs_topic, self.settings.authorizations_topic)
        tps: list[TopicPartition] = []
        for _ in range(60):
            await refresh_metadata(consumer)
            parts = [consumer.partitions_for_topic(t) for t in topics]
            if all(parts):
                tps = [
                    TopicPartition(t, p) for t, ps in zip(topics, parts, strict=True) for p in ps
                ]
                break
            log.warning("waiting for topics %s to exist (run `webhooks topics create`)", topics)
            await asyncio.sleep(1.0)
        else:
            raise RuntimeError(f"topics {topics} do not exist")
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        ends = await self._assign()
        pending = {tp for tp, end in ends.items() if end > 0}
        if not pending:
            self.ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, messages in batches.items():
                for msg in messages:
                    self._apply(tp.topic, msg.key, msg.value)
            if pending:
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
                if not pending:
                    log.info("config registry loaded: %d job(s)", len(self.jobs))
                    self.report_unreadable(self.authorizations)
                    self.ready.set()

    def unreadable_authorizations(self, ids: Iterable[str]) -> dict[str, str]:
        """Authorization id -> why the configured keys cannot read it, for those of `ids`."""
        box: SecretBox | None = None
        try:
            box = box_from_settings(self.settings)
        except SecretKeyError as exc:
            return {i: str(exc) for i in ids if i in self.authorizations}
        out = {}
        for ident in ids:
            doc = self.authorizations.get(ident)
            if doc is None:
                continue
            try:
                load_stored_authorization(doc, box)
            except (ValueError, TypeError) as exc:
                out[ident] = " ".join(str(exc).split())  # one log line, also for pydantic's
        return out

    def report_unreadable(self, ids: Iterable[str]) -> None:
        """One error line naming the authorizations that cannot be read (wrong or missing
        key) and the jobs that use them, instead of a traceback per request later."""
        bad = self.unreadable_authorizations(ids)
        if not bad:
            return
        jobs = sorted(j for j, job in self.jobs.items() if job.config.authorization in bad)
        log.error(
            "%d authorization(s) not readable with WEBHOOKS_SECRET_KEY or "
            "WEBHOOKS_SECRET_KEY_PREVIOUS: %s; job(s) using them cannot deliver: %s",
            len(bad),
            "; ".join(f"{i} ({why})" for i, why in sorted(bad.items())),
            ", ".join(jobs) or "none",
        )

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        ident = key.decode(errors="replace")
        if topic == self.settings.authorizations_topic:
            if value is None:
                self.authorizations.pop(ident, None)
            else:
                try:
                    self.authorizations[ident] = orjson.loads(value)
                except orjson.JSONDecodeError:
                    log.error("skipping authorization %s: not JSON", ident)
                    return
                if self.ready.is_set():
                    self.report_unreadable([ident])
            if self.ready.is_set():
                log.info("authorization %s %s", ident, "deleted" if value is None else "applied")
            return
        job: StoredJob | None = None
        if value is not None:
            try:
                job = StoredJob.from_record(orjson.loads(value))
            except (ValueError, TypeError) as exc:
                log.error("skipping job record %s: %s", ident, exc)
                return
        if job is None:
            self.jobs.pop(ident, None)
        else:
            self.jobs[ident] = job
        for listener in self._listeners:
            listener(ident, job)
