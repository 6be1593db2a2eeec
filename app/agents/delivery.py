"""Delivery: each job's queue topic -> its webhook, with job-wide batches and retries.

One `JobDelivery` per job per worker, each with its own consumer group on the job's queue
topic, so jobs never wait for each other (invariant 2). Batches fill across the whole job
(`JobBatcher`): one leaves when full or when its oldest event has waited the window, and a
user's event waits while an earlier event of that user is in flight, so order holds by user
(invariant 3) while up to the job's share of `worker_count` requests run in parallel. A
queue offset is committed only once it and every offset before it
has been delivered or dead-lettered (invariant 1); everything else is redelivered after a
crash with the same event ids and webhook-id (invariant 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from app.agents.auth_resolver import AuthResolver, AuthUnavailable
from app.domain.batching import JobBatcher
from app.domain.deadletters import deadletter_value
from app.domain.destinations import DestinationRefused
from app.domain.enrichment import (
    UnusableAnswer,
    answer_records,
    enrichment_body,
    enrichment_item,
)
from app.domain.job_log import iso
from app.domain.job_state import JobRetrySchedule, JobStateMachine, JobStatus
from app.domain.jobs import JobConfig, StoredJob
from app.domain.limiter import AdjustableLimiter
from app.domain.offsets import OffsetTracker, decode_done, encode_done
from app.domain.payloads import JSON, QueuedEvent, build_request_body, webhook_id
from app.domain.redaction import Redactor
from app.domain.retry import Outcome, RetryPolicy, classify
from app.domain.retry_after import retry_after_until
from app.domain.secrets import SecretBox
from app.domain.status_summary import config_version
from app.domain.templates import TemplateError, url_from_template
from app.domain.urls import merge_params
from app.settings import Settings
from app.topic_catalog import enrichment_topic_spec
from app.transport.http import WebhookClient, exception_text
from app.transport.job_log import JobLog
from app.transport.kafka import (
    admin_client,
    cancel_and_wait,
    durable_producer,
    ensure_topics,
    group_timeouts,
    read_to_end,
)
from app.transport.oauth import TokenError
from app.transport.registry import ConfigRegistry
from app.transport.template_runner import TemplateRunner
from app.transport.worker_count_assignor import WorkerCountAssignor

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.25
STATUS_INTERVAL_S = 1.0
MAX_WAITING_PER_REQUEST_SLOT = 2000  # events read ahead per unit of worker_count


class _Released(Exception):
    """The request's partitions are being given up: stop before its next attempt."""


@dataclass(slots=True)
class Item:
    """A queue record on its way to a request."""

    tp: TopicPartition
    offset: int
    event: QueuedEvent
    url: str
    epoch: int  # which assignment of `tp` read it (see JobDelivery._epochs)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: JobDelivery) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner.start_partitions(assigned)
        await self.owner.resize(assigned)


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
    ) -> None:
        self.job = job
        self.joblog = joblog
        self.templates = templates
        self.settings = settings
        self.auths = auths
        self.client = client
        self.producer = producer
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.machine = JobStateMachine(
            status,
            JobRetrySchedule(settings.job_retry_initial_s, settings.job_retry_max_s),
            failed_after_s=settings.job_failed_after_s,
            retry_after_max_s=settings.retry_after_max_s,
        )
        self.status_changed = True
        self.retry = RetryPolicy(settings.retry_backoff_initial_s, settings.retry_backoff_max_s)
        self.batcher: JobBatcher[Item] = JobBatcher(
            job.batch_size if job.batch else 1, settings.batch_window_s
        )
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._job_json = job.to_json_dict()
        self._group = f"{settings.app_id}-delivery-{job.id}"
        self.limiter = AdjustableLimiter(job.worker_count)
        self._share = job.worker_count
        self._releasing: set[TopicPartition] = set()
        self._skip: dict[TopicPartition, set[int]] = {}
        # Per assigned partition: the next offset to take (records below it, e.g. fetched
        # before a rebalance and again after, are skipped) and the assignment's number (an
        # item read under an earlier assignment is never counted under a later one).
        self._next: dict[TopicPartition, int] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._epoch = 0
        self._last_commit: dict[TopicPartition, tuple[int, str]] = {}

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if not self.job.is_triggers:
            await ensure_topics(
                self.settings, [enrichment_topic_spec(self.settings, self.job.stream)]
            )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1000,
            partition_assignment_strategy=(
                WorkerCountAssignor(self.job.worker_count, self._set_share),
            ),
            fetch_max_wait_ms=100,
            metadata_max_age_ms=5000,
            **group_timeouts(self.settings),
        )
        await self._consumer.start()
        self._consumer.subscribe([self.job.queue_topic], listener=_Rebalance(self))
        self._tasks = [asyncio.create_task(self._batches(), name=f"batches-{self.job.id}")]
        self._tasks.append(asyncio.create_task(self._consume(), name=f"consume-{self.job.id}"))
        self._tasks.append(asyncio.create_task(self._commit_loop(), name=f"commit-{self.job.id}"))
        log.info("delivery started for job %s (%s)", self.job.id, self.job.queue_topic)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._sending]:
            task.cancel()
        for task in [*self._tasks, *self._sending]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self.commit()
            await self._consumer.stop()
        log.info("delivery stopped for job %s", self.job.id)

    async def commit(self) -> None:
        """Commit each partition's contiguous point, with the offsets already finished beyond
        it as metadata (see `encode_done`), so a restart does not send those again."""
        consumer = self._consumer
        offsets = self.tracker.committable()
        if consumer is None or not offsets:
            return
        assigned = consumer.assignment()
        with_meta = {
            tp: (off, encode_done(off, self.tracker.done_above(tp)))
            for tp, off in offsets.items()
            if tp in assigned
        }
        if with_meta and with_meta != self._last_commit:
            await consumer.commit(with_meta)
            self._last_commit = with_meta

    async def resize(self, assigned: list[TopicPartition]) -> None:
        """Take the share of `worker_count` the group's assignor gave this worker."""
        self._releasing.clear()
        await self.limiter.set_limit(self._share if assigned else 1)
        log.info(
            "job %s: queue partitions %s, %d of worker_count %d",
            self.job.id,
            sorted(tp.partition for tp in assigned),
            self._share if assigned else 0,
            self.job.worker_count,
        )
        self._wake.set()

    def diagnostics(self) -> dict[str, Any]:
        """What `kill -USR1` logs for this job: where each partition's commit waits."""
        consumer = self._consumer
        assigned = consumer.assignment() if consumer is not None else set()
        return {
            "assigned": sorted(tp.partition for tp in assigned),
            "paused": sorted(tp.partition for tp in consumer.paused()) if consumer else [],
            "share": self._share,
            "limit": self.limiter.limit,
            "sending": len(self._sending),
            "waiting": len(self.batcher),
            "busy_keys": self.batcher.busy_keys,
            "releasing": sorted(tp.partition for tp in self._releasing),
            "tracker": self.tracker.diagnostics(),
            "tasks_done": [t.get_name() for t in self._tasks if t.done()],
        }

    def _set_share(self, share: int) -> None:
        self._share = max(1, share)

    async def release(self, revoked: list[TopicPartition]) -> None:
        """Before partitions go to another worker: let requests in flight end their current
        attempt (no new attempt starts for them), commit, then forget the partitions. So the
        group never has more than `worker_count` requests in flight, even across a
        rebalance; what was not finished is redelivered by the new owner."""
        self._releasing.update(revoked)
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=self.settings.http_total_timeout_s + 5)
        with contextlib.suppress(Exception):
            await self.commit()
        self.forget(revoked)

    def forget(self, revoked: list[TopicPartition]) -> None:
        """Revoked partitions: their waiting events are left to the partitions' new owner."""
        for tp in revoked:
            self.tracker.forget(tp)
            self._next.pop(tp, None)
            self._epochs.pop(tp, None)
        gone = set(revoked)
        self.batcher.drop(lambda item: item.tp in gone)

    async def start_partitions(self, assigned: list[TopicPartition]) -> None:
        """Seek each assigned partition to its committed offset (its beginning if none) and
        read which offsets beyond it were already delivered (the commit's metadata)."""
        consumer = self._consumer
        if not assigned or consumer is None:
            return
        committed: dict[TopicPartition, Any] = {}
        try:
            async with admin_client(self.settings) as admin:
                committed = await admin.list_consumer_group_offsets(
                    self._group, partitions=assigned
                )
        except Exception as exc:  # fall back to the consumer's view, without metadata
            log.warning("job %s: could not read commit metadata: %s", self.job.id, exc)
            for tp in assigned:
                offset = await consumer.committed(tp)
                committed[tp] = OffsetAndMetadata(offset, "") if offset is not None else None
        firsts = await consumer.beginning_offsets(assigned)
        for tp in assigned:
            meta = committed.get(tp)
            start = firsts[tp]
            if meta is not None and meta.offset >= 0:
                start = max(meta.offset, start)
                if meta.metadata:
                    self._skip[tp] = decode_done(meta.offset, meta.metadata)
            consumer.seek(tp, start)
            self._next[tp] = start
            self._epoch += 1
            self._epochs[tp] = self._epoch

    # -- consuming -----------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        limit = MAX_WAITING_PER_REQUEST_SLOT * self.job.worker_count
        paused = False
        while True:
            # Back-pressure by pausing, not by not polling: the consumer must keep polling
            # or it would be dropped from its group after max_poll_interval.
            if self.tracker.in_flight >= limit and not paused:
                consumer.pause(*consumer.assignment())
                paused = True
            elif paused and self.tracker.in_flight < limit // 2:
                consumer.resume(*consumer.assignment())
                paused = False
            batches = await consumer.getmany(timeout_ms=100)
            for tp, messages in batches.items():
                nxt = self._next.get(tp)
                if nxt is None:
                    continue  # not ours (any more): its owner reads it from the commit point
                epoch = self._epochs[tp]
                skip = self._skip.get(tp)
                for msg in messages:
                    if msg.offset < nxt or not self.tracker.started(tp, msg.offset):
                        continue  # fetched before, e.g. before a rebalance and again after
                    nxt = msg.offset + 1
                    if skip and msg.offset in skip:
                        skip.discard(msg.offset)  # delivered before the restart
                        self.tracker.finished(tp, msg.offset)
                        continue
                    await self._dispatch(tp, msg, epoch)
                if self._epochs.get(tp) == epoch:
                    self._next[tp] = nxt
            if batches:
                self._wake.set()

    async def _dispatch(self, tp: TopicPartition, msg: Any, epoch: int) -> None:
        try:
            event = QueuedEvent.from_queue_record(msg.value, msg.timestamp)
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter([], f"unreadable queue record: {exc}", raw=msg.value)
            self._finished(tp, msg.offset, epoch)
            return
        try:
            url = await self._url_for(event)
        except TemplateError as exc:
            await self._dead_letter([event], f"url_template failed: {exc}")
            self._finished(tp, msg.offset, epoch)
            return
        except Exception as exc:  # whatever a template or a URL can make the code raise
            await self._dead_letter([event], f"url_template failed: {exception_text(exc)}")
            self._finished(tp, msg.offset, epoch)
            return
        item = Item(tp, msg.offset, event, url, epoch)
        self.batcher.add(event.user_id, url, item, time.monotonic())

    def _finished(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        if self._epochs.get(tp) == epoch:  # else read under an earlier assignment: not ours
            self.tracker.finished(tp, offset)

    async def _url_for(self, event: QueuedEvent) -> str:
        if self.job.url_template:
            value = await self.templates.render(
                self.job.url_template,
                event.template_user(self.job.export_fields),
                self._job_json,
                self.job.id,
            )
            return url_from_template(value)
        assert self.job.webhook_url is not None
        return self.job.webhook_url

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            try:
                await self.commit()
            except Exception as exc:  # a failed commit is retried on the next tick
                log.warning("job %s: commit failed: %s", self.job.id, exc)

    # -- batches -------------------------------------------------------------------------

    async def _batches(self) -> None:
        """Start a request for each batch that may go, while the job's share allows."""
        while True:
            now = time.monotonic()
            while len(self._sending) < self.limiter.limit:
                got = self.batcher.take(now)
                if got is None:
                    break
                items, keys = got
                task = asyncio.create_task(self._send(items, keys))
                self._sending.add(task)
                task.add_done_callback(self._sent)
            deadline = self.batcher.next_deadline()
            timeout = None if deadline is None else max(0.001, deadline - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wake.set()

    async def _send(self, batch: list[Item], keys: list[str]) -> None:
        try:
            owned = [i for i in batch if self._epochs.get(i.tp) == i.epoch]
            if owned:
                try:
                    await self._deliver(owned)
                except _Released:
                    return  # its partitions moved: the new owner delivers these events
                except Exception as exc:  # a bug or an input nobody foresaw: go on
                    await self._unexpected(owned, exc)
                for item in owned:
                    self._finished(item.tp, item.offset, item.epoch)
        finally:
            self.batcher.done(keys)

    async def _unexpected(self, batch: list[Item], exc: Exception) -> None:
        """Log an error `_deliver` did not expect with the job and event ids, and dead-letter
        the events with the reason, so delivery goes on and nothing is silently dropped."""
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
            self.job.id, "error", f"unexpected error: {reason}", reason=reason, events=len(ids)
        )
        await self._dead_letter([i.event for i in batch], f"delivery failed unexpectedly: {reason}")

    def _check_owned(self, items: list[Item]) -> None:
        if self._releasing and any(i.tp in self._releasing for i in items):
            raise _Released

    async def _wait_until_runnable(self, items: list[Item]) -> None:
        """Hold this request while the job sleeps, errors (until its next run) or has failed."""
        while True:
            self._check_owned(items)
            before = self.machine.status.state
            wait = self.machine.wait_s(time.time())
            if self.machine.status.state != before:
                self.status_changed = True
            if wait == 0.0:
                return
            await asyncio.sleep(1.0 if wait is None else min(wait, 1.0))

    async def _request_body(self, items: list[Item]) -> tuple[list[QueuedEvent], bytes, str]:
        """The events a request carries and its body; enrichment template failures are
        dead-lettered here, per user, and the rest still sent."""
        events = [i.event for i in items]
        if self.job.is_triggers:
            body, content_type = build_request_body(self.job, events)
            return events, body, content_type
        kept: list[QueuedEvent] = []
        parts: list[Any] = []
        for event in events:
            try:
                if self.job.body_template:
                    part = await self.templates.render(
                        self.job.body_template,
                        event.template_user(self.job.export_fields),
                        self._job_json,
                        self.job.id,
                    )
                else:
                    part = enrichment_item(self.job, event, self._job_json)
                parts.append(part)
                kept.append(event)
            except TemplateError as exc:
                await self._dead_letter([event], f"body_template failed: {exc}")
        return kept, (enrichment_body(self.job, parts) if kept else b""), JSON

    async def _deliver(self, items: list[Item]) -> None:
        """Send one request for `items` until it is delivered or omitted; never raises."""
        events, body, content_type = await self._request_body(items)
        if not events:
            return
        wid = webhook_id(events)
        attempt = 0
        refreshed_after_401 = False
        while True:
            await self._wait_until_runnable(items)
            status: int | None = None
            redactor = Redactor()
            token: str | None = None
            try:
                resolved = self.auths.resolve(self.job.authorization)
                if resolved is not None:
                    redactor = Redactor.for_auth(resolved.auth)
                    if resolved.tokens is not None:
                        token = await resolved.tokens.token()
                        redactor = Redactor.for_auth(resolved.auth, token)
                    extra_headers, params = resolved.auth.request_parts(token)
                    secret_headers, secret_params = resolved.auth.secret_names
                else:
                    extra_headers, params = [], []
                    secret_headers, secret_params = [], []
                headers = {
                    "Content-Type": content_type,
                    "webhook-id": wid,
                    "webhook-timestamp": str(int(time.time())),
                }
                headers.update(extra_headers)
                url = merge_params(items[0].url, params)
                response = await self.client.send(
                    self.job.http_method,
                    url,
                    body,
                    headers,
                    secret_headers=secret_headers,
                    secret_params=secret_params,
                )
            except DestinationRefused as exc:
                await self._dead_letter(events, f"destination refused: {redactor.text(str(exc))}")
                return
            except TokenError as exc:
                reason, status = str(exc), exc.status
                if exc.permanent:  # wrong credentials do not fix themselves: error now
                    self.machine.error_now(time.time(), reason, status)
                    self.status_changed = True
                    log.error("job %s: %s", self.job.id, reason)
                    await self.joblog.write(
                        self.job.id, "error", reason, reason=reason, status=status, attempt=attempt
                    )
                    continue
            except (aiohttp.ClientError, OSError, TimeoutError, AuthUnavailable) as exc:
                reason = redactor.text(exception_text(exc))
            else:
                status = response.status
                if (
                    status == 401
                    and token is not None
                    and resolved is not None
                    and resolved.tokens is not None
                    and not refreshed_after_401
                ):
                    refreshed_after_401 = True  # once per request: the token may have expired
                    with contextlib.suppress(TokenError):
                        await resolved.tokens.refresh_after_401(token)
                    continue
                outcome = classify(status, self.job.never_retry)
                excerpt = redactor.text(response.excerpt)
                if outcome is Outcome.DELIVERED:
                    if not self.job.is_triggers:
                        await self._publish_answer(events, response.body)
                    self.machine.delivered(time.time(), requests=1, events=len(events))
                    self.status_changed = True
                    return
                if outcome is Outcome.OMIT:
                    await self._dead_letter(
                        events, f"omitted: HTTP {status} is not retried: {excerpt}", status=status
                    )
                    return
                reason = f"HTTP {status}: {excerpt}"
                until = retry_after_until(response.headers.get("Retry-After"), time.time())
                if until is not None:
                    log.info("job %s: HTTP %d with Retry-After; sleeping", self.job.id, status)
                    self.machine.retry_after(time.time(), until)
                    self.status_changed = True
                    continue
            attempt += 1
            self.machine.failed(time.time(), reason, status)
            self.status_changed = True
            delay = self.retry.delay(attempt)
            log.warning(
                "job %s: request %s failed (%s); retry %d in %.1f s",
                self.job.id,
                wid,
                reason[:200],
                attempt,
                delay,
            )
            await self.joblog.write(
                self.job.id,
                "error",
                f"request of {len(events)} event(s) failed: {reason}; retry {attempt} "
                f"in {delay:.1f} s",
                reason=reason,
                status=status,
                attempt=attempt,
                retry_in_s=round(delay, 3),
                events=len(events),
            )
            until = time.monotonic() + delay
            while time.monotonic() < until:
                self._check_owned(items)
                await asyncio.sleep(min(1.0, until - time.monotonic()))

    async def _publish_answer(self, events: list[QueuedEvent], body: bytes) -> None:
        """Publish each user's answer to the job's stream; an unusable answer is a dead letter."""
        try:
            records = answer_records(self.job, events, body)
        except UnusableAnswer as exc:
            await self._dead_letter(events, f"enrichment answer unusable: {exc}")
            return
        while True:
            try:
                acks = [
                    await self.producer.send(self.job.stream, value, key=key)
                    for key, value in records
                ]
                await asyncio.gather(*acks)
                return
            except Exception as exc:
                log.error("job %s: answers not published (%s); retrying", self.job.id, exc)
                await asyncio.sleep(1.0)

    async def _dead_letter(
        self,
        events: list[QueuedEvent],
        reason: str,
        status: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Write one dead letter per event and wait for the broker; retried until it lands."""
        docs: list[Any] = [e.template_user() | {"event_id": e.event_id} for e in events]
        if raw is not None:
            docs = [raw.decode("utf-8", errors="replace")]
        key = self.job.id.encode()
        while True:
            try:
                acks = [
                    await self.producer.send(
                        self.settings.deadletter_topic,
                        deadletter_value(
                            job_id=self.job.id, reason=reason, event=doc, status=status
                        ),
                        key=key,
                    )
                    for doc in docs
                ]
                await asyncio.gather(*acks)
                self.machine.omitted(len(docs), time.time(), reason, status)
                self.status_changed = True
                log.info(
                    "job %s: %d event(s) dead-lettered: %s", self.job.id, len(docs), reason[:200]
                )
                await self.joblog.write(
                    self.job.id,
                    "omitted",
                    f"{len(docs)} event(s) omitted: {reason}",
                    reason=reason,
                    status=status,
                    events=len(docs),
                    event_ids=[e.event_id for e in events],
                )
                return
            except Exception as exc:
                log.error("job %s: dead letter not written (%s); retrying", self.job.id, exc)
                await asyncio.sleep(1.0)


class DeliveryManager:
    """Runs a JobDelivery for every running job the registry knows; follows its changes, and
    keeps each job's status on the status topic (key `<job id>/<worker id>`)."""

    def __init__(self, settings: Settings, registry: ConfigRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.client = WebhookClient(settings)
        self.templates = TemplateRunner(settings.template_processes, settings.template_timeout_s)
        self.producer: AIOKafkaProducer | None = None
        self.joblog: JobLog | None = None
        self._logged_states: dict[str, str] = {}  # job id -> state last written to its log
        self.deliveries: dict[str, JobDelivery] = {}
        self.statuses: dict[str, JobStatus] = {}
        self._resumed_at: dict[str, float] = {}
        self._versions: dict[str, str] = {}  # job id -> config version it runs (or holds)
        self._last_heartbeat = 0.0
        self._dirty: set[str] = set()
        self._changes: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        key = settings.secret_key
        box = SecretBox(key.get_secret_value()) if key is not None else None
        self.auths = AuthResolver(registry, box, self.client)

    async def start(self) -> None:
        await self.client.start()
        self.producer = durable_producer(self.settings)
        await self.producer.start()
        self.joblog = JobLog(self.settings, self.producer)
        self.statuses = await self._load_statuses()
        self._logged_states = {job_id: st.state for job_id, st in self.statuses.items()}
        self.registry.subscribe(lambda job_id, _job: self._changes.put_nowait(job_id))
        await self.registry.ready.wait()
        for job_id in list(self.statuses):
            if job_id not in self.registry.jobs:  # deleted while this worker was down
                del self.statuses[job_id]
                self._dirty.add(job_id)
        for job_id in list(self.registry.jobs):
            self._changes.put_nowait(job_id)
        self._tasks = [
            asyncio.create_task(self._follow(), name="delivery-manager"),
            asyncio.create_task(self._publish_statuses(), name="job-status"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        for delivery in list(self.deliveries.values()):
            await delivery.stop()
        self.deliveries.clear()
        with contextlib.suppress(Exception):
            # A last record per job, marked final: this worker drops out of statuses at once.
            await self._write_statuses(final=True)
        if self.joblog is not None:
            await self.joblog.flush()
        if self.producer is not None:
            await self.producer.stop()
        await self.client.close()
        await self.templates.close()

    def _status_key(self, job_id: str) -> str:
        return f"{job_id}/{self.settings.worker_id}"

    async def _load_statuses(self) -> dict[str, JobStatus]:
        """This worker's job statuses as it last wrote them (they survive restarts)."""
        out: dict[str, JobStatus] = {}
        suffix = f"/{self.settings.worker_id}"
        for key, value, _ in await read_to_end(self.settings, self.settings.status_topic):
            name = key.decode(errors="replace") if key else ""
            if not name.endswith(suffix):
                continue
            job_id = name.removesuffix(suffix)
            if value is None:
                out.pop(job_id, None)
                continue
            try:
                out[job_id] = JobStatus.from_dict(orjson.loads(value)["status"])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable status of job %s: %s", job_id, exc)
        return out

    async def _publish_statuses(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            try:
                await self._write_statuses()
            except Exception as exc:  # retried on the next tick
                log.warning("could not write job statuses: %s", exc)

    async def _write_statuses(self, final: bool = False) -> None:
        """Write the changed statuses; every status each heartbeat (its `updated_at` is
        what tells readers this worker is alive), and all of them, `final`, on stop."""
        assert self.producer is not None
        for job_id, delivery in self.deliveries.items():
            if delivery.status_changed:
                delivery.status_changed = False
                self._dirty.add(job_id)
        await self._log_transitions()
        if final or time.monotonic() - self._last_heartbeat >= self.settings.status_heartbeat_s:
            self._dirty |= set(self.statuses)
            self._last_heartbeat = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        try:
            for job_id in dirty:
                status = self.statuses.get(job_id)
                value = None
                if status is not None:
                    value = orjson.dumps(
                        {
                            "job_id": job_id,
                            "worker_id": self.settings.worker_id,
                            "updated_at": time.time(),
                            "version": self._versions.get(job_id),
                            "final": final,
                            "status": status.to_dict(),
                        }
                    )
                key = self._status_key(job_id).encode()
                await self.producer.send_and_wait(self.settings.status_topic, value, key=key)
        except Exception:
            self._dirty |= dirty
            raise

    async def _log_transitions(self) -> None:
        """A `state` entry in the job log for every state change since the last look."""
        assert self.joblog is not None
        for job_id, status in list(self.statuses.items()):
            before = self._logged_states.get(job_id)
            if before == status.state:
                continue
            self._logged_states[job_id] = status.state
            if before is None and status.state == "running":
                continue  # a new job: its `delivery` entry says so
            reason = _transition_reason(status)
            await self.joblog.write(
                job_id,
                "state",
                f"{before or 'new'} -> {status.state}" + (f": {reason}" if reason else ""),
                **{"from": before, "to": status.state},
                reason=reason,
                next_run=iso(status.next_run),
            )

    async def _follow(self) -> None:
        while True:
            job_id = await self._changes.get()
            try:
                await self._reconcile(job_id, self.registry.jobs.get(job_id))
            except Exception:
                log.exception("job %s: could not (re)start delivery; retrying in 5 s", job_id)
                await asyncio.sleep(5.0)
                self._changes.put_nowait(job_id)

    async def _reconcile(self, job_id: str, stored: StoredJob | None) -> None:
        current = self.deliveries.get(job_id)
        wanted = stored is not None and stored.desired_state == "running"
        resumed_at = stored.resumed_at if stored is not None else 0.0
        changed = current is not None and (
            stored is None
            or current.job != stored.config
            or self._resumed_at.get(job_id) != resumed_at
        )
        if current is not None and (not wanted or changed):
            await current.stop()
            del self.deliveries[job_id]
            current = None
            await self._log(job_id, f"delivery stopped on worker {self.settings.worker_id}")
        now = time.time()
        if stored is None:
            self._resumed_at.pop(job_id, None)
            self._versions.pop(job_id, None)
            if self.statuses.pop(job_id, None) is not None:
                self._dirty.add(job_id)  # a tombstone for the deleted job's status
            log.info("job %s deleted: delivery stopped", job_id)
            await self._log(job_id, f"job deleted: worker {self.settings.worker_id} forgot it")
            self._logged_states.pop(job_id, None)
            return
        status = self.statuses.setdefault(job_id, JobStatus(since=now))
        if not wanted:
            self._versions[job_id] = config_version(stored.config.to_json_dict())
            self._dirty.add(job_id)
            if status.state != "stopped":
                status.state, status.since, status.next_run = "stopped", now, None
            return
        if current is None:
            assert self.producer is not None and self.joblog is not None
            delivery = JobDelivery(
                stored.config,
                self.settings,
                self.auths,
                self.client,
                self.producer,
                status,
                self.templates,
                self.joblog,
            )
            if status.state == "stopped" or resumed_at > status.since:
                delivery.machine.resume(now)
            self._resumed_at[job_id] = resumed_at
            await delivery.start()
            self.deliveries[job_id] = delivery
            version = config_version(stored.config.to_json_dict())
            await self._log(
                job_id,
                f"delivery started on worker {self.settings.worker_id} (version {version})",
                version=version,
            )
        self._versions[job_id] = config_version(stored.config.to_json_dict())
        self._dirty.add(job_id)  # report the version now, not at the next heartbeat

    async def _log(self, job_id: str, message: str, **details: Any) -> None:
        if self.joblog is not None:
            await self.joblog.write(job_id, "delivery", message, **details)


def _transition_reason(status: JobStatus) -> str | None:
    """Why a job is in its state, for its log: the last error, a Retry-After, a resume."""
    if status.state in ("error", "failed") and status.last_error is not None:
        code = f"HTTP {status.last_error.status}: " if status.last_error.status else ""
        reason = status.last_error.reason
        return reason if reason.startswith("HTTP") else code + reason
    if status.state == "sleeping":
        return "the endpoint asked to wait (Retry-After)"
    if status.state == "stopped":
        return "stopped by the user"
    return None
