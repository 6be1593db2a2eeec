"""One job's delivery on this worker: its queue -> job-wide batches -> requests.

Wiring only; each part has its own module:
- `JobQueue` (transport) reads the job's queue through the process's shared reader and
  commits only finished offsets;
- `JobBatcher` (domain) forms job-wide batches and keeps one user's events in order;
- `RequestSender` attempts each request until delivered or omitted (`domain/attempt.py`
  decides what each attempt means);
- `sinks` write dead letters and enrichment answers until the broker has them.
A job is delivered by one worker process at a time (the holder of its delivery slot,
`app/domain/slots.py`), so at most `worker_count` requests run at once. Before the job moves
to another process (`hand_over`), requests in flight finish their current attempt and start
no other.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from app.delivery.job_signer import JobSigner
from app.delivery.rendering import RequestRenderer
from app.delivery.request_sender import Released, RequestSender
from app.domain.batching import JobBatcher
from app.domain.enrichment import UnusableAnswer, answer_records
from app.domain.job_state import JobRetrySchedule, JobStateMachine, JobStatus
from app.domain.jobs import JobConfig
from app.domain.queue_record import QueuedEvent
from app.domain.redaction import Redactor
from app.domain.retry import RetryPolicy
from app.domain.templates import TemplateError
from app.settings import Settings
from app.topic_catalog import delivery_group, enrichment_topic_spec
from app.transport import metrics
from app.transport.auth_resolver import AuthResolver
from app.transport.http import WebhookClient, exception_text
from app.transport.job_log import JobLog
from app.transport.job_queue import JobQueue
from app.transport.kafka import cancel_and_wait
from app.transport.kafka_admin import SharedAdmin, ensure_topics
from app.transport.queue_reader import QueueReader
from app.transport.sinks import deadletter_records, publish_until_acked
from app.transport.template_runner import TemplateRunner
from app.transport.waits import wait_event

log = logging.getLogger(__name__)

MAX_WAITING_PER_REQUEST_SLOT = 2000  # events read ahead per unit of worker_count


@dataclass(slots=True)
class Item:
    """A queue record on its way to a request."""

    tp: TopicPartition
    offset: int
    event: QueuedEvent
    url: str
    epoch: int  # the reading of `tp` that read it (JobQueue)


class JobDelivery:
    """Delivers one job's queue on this worker until stopped."""

    def __init__(
        self,
        job: JobConfig,
        settings: Settings,
        auths: AuthResolver,
        client: WebhookClient,
        producer: AIOKafkaProducer,
        status: JobStatus,
        templates: TemplateRunner,
        joblog: JobLog,
        reader: QueueReader,
        admin: SharedAdmin,
        signer: JobSigner | None = None,
    ) -> None:
        self.job = job
        self.settings = settings
        self.auths = auths
        self.producer = producer
        self.templates = templates
        self.joblog = joblog
        self.machine = JobStateMachine(
            status,
            JobRetrySchedule(settings.job_retry_initial_s, settings.job_retry_max_s),
            failed_after_s=settings.job_failed_after_s,
            retry_after_max_s=settings.retry_after_max_s,
        )
        self.batcher: JobBatcher[Item] = JobBatcher(
            job.batch_size if job.batch else 1, settings.batch_window_s
        )
        self.limit = job.worker_count  # the whole job is delivered by this process
        self.queue = JobQueue(
            reader,
            admin,
            delivery_group(settings, job.id),
            job.queue_topic,
            job.worker_count,
            MAX_WAITING_PER_REQUEST_SLOT * job.worker_count,
            on_records=self._on_records,
        )
        self.sender = RequestSender(
            job,
            auths,
            client,
            self.machine,
            RetryPolicy(settings.retry_backoff_initial_s, settings.retry_backoff_max_s),
            joblog,
            on_omit=self._dead_letter,
            on_answer=self._publish_answer,
            signer=signer,
        )
        self.renderer = RequestRenderer(job, templates)
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._batching: asyncio.Task[None] | None = None
        self._releasing: set[TopicPartition] = set()

    async def start(self) -> None:
        if not self.job.is_triggers:
            await ensure_topics(
                self.settings, [enrichment_topic_spec(self.settings, self.job.stream)]
            )
        await self.queue.start()
        self._batching = asyncio.create_task(self._batches(), name=f"batches-{self.job.id}")
        log.info(
            "delivery started for job %s (%s, partitions %s, worker_count %d)",
            self.job.id,
            self.job.queue_topic,
            [tp.partition for tp in self.queue.partitions],
            self.job.worker_count,
        )

    async def hand_over(self) -> None:
        """Stop before the job moves to another worker process: read no more, let requests
        in flight end their current attempt (none starts another), commit what finished.
        Events not delivered are left to the new deliverer."""
        await self.queue.stop_reading()
        self._releasing.update(self.queue.partitions)
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=self.settings.http_total_timeout_s + 5)
        await self.stop()

    async def stop(self) -> None:
        await self.queue.stop_reading()
        await cancel_and_wait(self._batching)
        for task in list(self._sending):
            await cancel_and_wait(task)
        await self.queue.stop()
        log.info("delivery stopped for job %s", self.job.id)

    def diagnostics(self) -> dict[str, Any]:
        """What `kill -USR1` logs for this job: where each partition's commit waits."""
        return self.queue.diagnostics() | {
            "limit": self.limit,
            "sending": len(self._sending),
            "waiting": len(self.batcher),
            "busy_keys": self.batcher.busy_keys,
            "releasing": sorted(tp.partition for tp in self._releasing),
            "batching_done": self._batching is not None and self._batching.done(),
        }

    # -- moving to another worker -----------------------------------------------------------

    def _check_owned(self, items: list[Item]) -> None:
        if self._releasing and any(i.tp in self._releasing for i in items):
            raise Released

    # -- records -> batches ----------------------------------------------------------------

    async def _on_records(self, tp: TopicPartition, epoch: int, records: list[Any]) -> None:
        for msg in records:
            await self._dispatch(tp, msg, epoch)
        self._wake.set()

    async def _dispatch(self, tp: TopicPartition, msg: Any, epoch: int) -> None:
        try:
            event = QueuedEvent.from_queue_record(msg.value, msg.timestamp)
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter(
                [], f"unreadable queue record: {exc}", raw=msg.value, outside=str(exc)
            )
            self.queue.finished(tp, msg.offset, epoch)
            return
        try:
            url = self.renderer.fixed_url or await self.renderer.url(event)
        except TemplateError as exc:
            await self._dead_letter([event], f"url_template failed: {exc}", outside=str(exc))
            self.queue.finished(tp, msg.offset, epoch)
            return
        except Exception as exc:  # whatever a template or a URL can make the code raise
            text = exception_text(exc)
            await self._dead_letter([event], f"url_template failed: {text}", outside=text)
            self.queue.finished(tp, msg.offset, epoch)
            return
        item = Item(tp, msg.offset, event, url, epoch)
        self.batcher.add(event.user_id, url, item, time.monotonic())

    async def _batches(self) -> None:
        """Start a request for each batch that may go, while the job's share allows."""
        while True:
            now = time.monotonic()
            while len(self._sending) < self.limit:
                got = self.batcher.take(now)
                if got is None:
                    break
                items, keys = got
                task = asyncio.create_task(self._send(items, keys))
                self._sending.add(task)
                task.add_done_callback(self._sent)
            deadline = self.batcher.next_deadline()
            timeout = None if deadline is None else max(0.001, deadline - now)
            await wait_event(self._wake, timeout)
            self._wake.clear()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wake.set()

    # -- batches -> requests ---------------------------------------------------------------

    async def _send(self, batch: list[Item], keys: list[str]) -> None:
        try:
            owned = [i for i in batch if self.queue.current(i.tp, i.epoch)]
            if not owned:
                return
            try:
                events, body, content_type, failed = await self.renderer.body(
                    [i.event for i in owned]
                )
                for event, reason in failed:  # a template failed for this user: the rest go
                    # "body_template failed: <the template's message>"
                    await self._dead_letter([event], reason, outside=reason.partition(": ")[2])
                if events:
                    await self.sender.send(
                        events, owned[0].url, body, content_type, lambda: self._check_owned(owned)
                    )
            except Released:
                return  # its partitions moved: the new owner delivers these events
            except Exception as exc:  # a bug or an input nobody foresaw: go on
                await self._unexpected(owned, exc)
            for item in owned:
                self.queue.finished(item.tp, item.offset, item.epoch)
        finally:
            self.batcher.done(keys)

    async def _unexpected(self, batch: list[Item], exc: Exception) -> None:
        """Log an error nobody expected with the job and event ids, and dead-letter the
        events with the reason, so delivery goes on and nothing is silently dropped."""
        ids = [item.event.event_id for item in batch]
        try:
            resolved = self.auths.resolve(self.job.authorization)
            redactor = Redactor.for_auth(resolved.auth if resolved is not None else None)
        except Exception:
            redactor = Redactor()
        reason = redactor.text(exception_text(exc))[:1000]
        trace = redactor.text("".join(traceback.format_exception(exc)))
        log.error(
            "job %s: unexpected error delivering event(s) %s: %s; dead-lettered\n%s",
            self.job.id,
            ids[:10],
            reason,
            trace,
        )
        await self.joblog.write(
            self.job.id,
            "error",
            f"unexpected error: {reason}",
            outside=reason,
            reason=reason,
            events=len(ids),
        )
        await self._dead_letter(
            [i.event for i in batch], f"delivery failed unexpectedly: {reason}", outside=reason
        )

    # -- outputs besides the webhook -------------------------------------------------------

    async def _publish_answer(self, events: list[QueuedEvent], body: bytes) -> None:
        """Publish each user's answer to the job's stream; an unusable answer is a dead letter."""
        try:
            records = answer_records(self.job, events, body)
        except UnusableAnswer as exc:
            await self._dead_letter(events, f"enrichment answer unusable: {exc}", outside=str(exc))
            return
        await publish_until_acked(
            self.producer, self.job.stream, records, f"job {self.job.id}: answers"
        )

    async def _dead_letter(
        self,
        events: list[QueuedEvent],
        reason: str,
        status: int | None = None,
        outside: str = "",
        raw: bytes | None = None,
    ) -> None:
        """One dead letter per event, acked by the broker; then counted and logged (the job
        log without `outside`, the part of `reason` that came from outside)."""
        records = deadletter_records(self.job.id, events, reason, status, raw)
        await publish_until_acked(
            self.producer,
            self.settings.deadletter_topic,
            records,
            f"job {self.job.id}: dead letters",
        )
        self.machine.omitted(len(records), time.time(), reason, status)
        metrics.EVENTS_OMITTED.labels(self.job.id).inc(len(records))
        log.info("job %s: %d event(s) dead-lettered: %s", self.job.id, len(records), reason[:200])
        await self.joblog.write(
            self.job.id,
            "omitted",
            f"{len(records)} event(s) omitted: {reason}",
            outside=outside,
            reason=reason,
            status=status,
            events=len(records),
            event_ids=[e.event_id for e in events],
        )
