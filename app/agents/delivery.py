"""Delivery: each job's queue topic -> its webhook, with lanes, batches and retries.

One `JobDelivery` per job per worker, each with its own consumer group on the job's queue
topic, so jobs never wait for each other (invariant 2). Lanes are keyed by user id: one
user's events go through one lane, in order (invariant 3), while `worker_count` lanes run
requests in parallel. A queue offset is committed only once it and every offset before it
has been delivered or dead-lettered (invariant 1); everything else is redelivered after a
crash with the same event ids and webhook-id (invariant 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from app.agents.deadletter import deadletter_value
from app.domain.authorizations import Authorization, load_stored_authorization
from app.domain.destinations import DestinationRefused
from app.domain.jobs import JobConfig, StoredJob
from app.domain.offsets import OffsetTracker
from app.domain.payloads import QueuedEvent, build_request_body, webhook_id
from app.domain.retry import Outcome, RetryPolicy, classify
from app.domain.secrets import SecretBox
from app.domain.templates import TemplateError, render_url
from app.domain.urls import merge_params
from app.settings import Settings
from app.transport.http import WebhookClient, exception_text
from app.transport.registry import ConfigRegistry

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.5
MAX_IN_FLIGHT_PER_LANE = 2000


@dataclass(slots=True)
class Item:
    """A queue record on its way through a lane."""

    tp: TopicPartition
    offset: int
    event: QueuedEvent
    url: str


@dataclass(slots=True)
class JobCounters:
    delivered_requests: int = 0
    delivered_events: int = 0
    omitted_events: int = 0
    retried_requests: int = 0
    failed_requests: int = 0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: JobDelivery) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.commit()
        for tp in revoked:
            self.owner.tracker.forget(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


class JobDelivery:
    """Delivers one job's queue on this worker until stopped."""

    def __init__(
        self,
        job: JobConfig,
        settings: Settings,
        registry: ConfigRegistry,
        client: WebhookClient,
        producer: AIOKafkaProducer,
        box: SecretBox | None,
    ) -> None:
        self.job = job
        self.settings = settings
        self.registry = registry
        self.client = client
        self.producer = producer
        self.box = box
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.counters = JobCounters()
        self.retry = RetryPolicy(settings.retry_backoff_initial_s, settings.retry_backoff_max_s)
        self.lanes: list[asyncio.Queue[Item]] = [asyncio.Queue() for _ in range(job.worker_count)]
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._job_json = job.to_json_dict()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=f"{self.settings.app_id}-delivery-{self.job.id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1000,
            fetch_max_wait_ms=100,
            metadata_max_age_ms=5000,
        )
        await self._consumer.start()
        self._consumer.subscribe([self.job.queue_topic], listener=_Rebalance(self))
        self._tasks = [
            asyncio.create_task(self._lane(i), name=f"lane-{self.job.id}-{i}")
            for i in range(len(self.lanes))
        ]
        self._tasks.append(asyncio.create_task(self._consume(), name=f"consume-{self.job.id}"))
        self._tasks.append(asyncio.create_task(self._commit_loop(), name=f"commit-{self.job.id}"))
        log.info("delivery started for job %s (%s)", self.job.id, self.job.queue_topic)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self.commit()
            await self._consumer.stop()
        log.info("delivery stopped for job %s", self.job.id)

    async def commit(self) -> None:
        consumer = self._consumer
        offsets = self.tracker.committable()
        if consumer is None or not offsets:
            return
        assigned = consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in assigned}
        if offsets:
            await consumer.commit(offsets)

    # -- consuming -----------------------------------------------------------------------

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        limit = MAX_IN_FLIGHT_PER_LANE * len(self.lanes)
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
                for msg in messages:
                    self.tracker.started(tp, msg.offset)
                    await self._dispatch(tp, msg)

    async def _dispatch(self, tp: TopicPartition, msg: Any) -> None:
        try:
            event = QueuedEvent.from_queue_record(msg.value, msg.timestamp)
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead_letter([], f"unreadable queue record: {exc}", raw=msg.value)
            self.tracker.finished(tp, msg.offset)
            return
        try:
            url = self._url_for(event)
        except TemplateError as exc:
            await self._dead_letter([event], f"url_template failed: {exc}")
            self.tracker.finished(tp, msg.offset)
            return
        lane = zlib.crc32(event.user_id.encode()) % len(self.lanes)
        self.lanes[lane].put_nowait(Item(tp, msg.offset, event, url))

    def _url_for(self, event: QueuedEvent) -> str:
        if self.job.url_template:
            return render_url(self.job.url_template, event.template_user(), self._job_json)
        assert self.job.webhook_url is not None
        return self.job.webhook_url

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            try:
                await self.commit()
            except Exception as exc:  # a failed commit is retried on the next tick
                log.warning("job %s: commit failed: %s", self.job.id, exc)

    # -- lanes ---------------------------------------------------------------------------

    async def _lane(self, index: int) -> None:
        queue = self.lanes[index]
        held: Item | None = None
        while True:
            first = held or await queue.get()
            held = None
            batch = [first]
            if self.job.batch:
                deadline = time.monotonic() + self.settings.batch_window_s
                while len(batch) < self.job.batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        try:
                            item = await asyncio.wait_for(queue.get(), remaining)
                        except TimeoutError:
                            break
                    if item.url != first.url:
                        held = item  # a different URL starts the next request
                        break
                    batch.append(item)
            batch = [i for i in batch if self.tracker.owns(i.tp)]
            if batch:
                await self._deliver(batch)
                for item in batch:
                    self.tracker.finished(item.tp, item.offset)

    async def _deliver(self, items: list[Item]) -> None:
        """Send one request for `items` until it is delivered or omitted; never raises."""
        events = [i.event for i in items]
        body, content_type = build_request_body(self.job, events)
        wid = webhook_id(events)
        attempt = 0
        while True:
            try:
                auth = self._authorization()
                url = merge_params(items[0].url, auth.param_pairs if auth else [])
                headers = {
                    "Content-Type": content_type,
                    "webhook-id": wid,
                    "webhook-timestamp": str(int(time.time())),
                }
                if auth is not None:
                    headers.update(auth.header_pairs)
                response = await self.client.send(self.job.http_method, url, body, headers)
            except DestinationRefused as exc:
                await self._dead_letter(events, f"destination refused: {exc}")
                return
            except (aiohttp.ClientError, OSError, TimeoutError, AuthUnavailable) as exc:
                reason = exception_text(exc)
            else:
                outcome = classify(response.status, self.job.never_retry)
                if outcome is Outcome.DELIVERED:
                    self.counters.delivered_requests += 1
                    self.counters.delivered_events += len(events)
                    return
                if outcome is Outcome.OMIT:
                    await self._dead_letter(
                        events,
                        f"omitted: HTTP {response.status} is not retried: {response.excerpt}",
                        status=response.status,
                    )
                    return
                reason = f"HTTP {response.status}: {response.excerpt}"
            attempt += 1
            self.counters.failed_requests += 1
            self.counters.retried_requests += 1
            delay = self.retry.delay(attempt)
            log.warning(
                "job %s: request %s failed (%s); retry %d in %.1f s",
                self.job.id,
                wid,
                reason[:200],
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    def _authorization(self) -> Authorization | None:
        auth_id = self.job.authorization
        if not auth_id:
            return None
        doc = self.registry.authorizations.get(auth_id)
        if doc is None:
            raise AuthUnavailable(f"authorization {auth_id!r} does not exist")
        try:
            auth = load_stored_authorization(doc, self.box)
        except ValueError as exc:
            raise AuthUnavailable(f"authorization {auth_id!r}: {exc}") from None
        if auth.method == "oauth2_client_credentials":
            raise AuthUnavailable("oauth2_client_credentials is not supported yet")
        return auth

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
                self.counters.omitted_events += len(docs)
                log.info(
                    "job %s: %d event(s) dead-lettered: %s", self.job.id, len(docs), reason[:200]
                )
                return
            except Exception as exc:
                log.error("job %s: dead letter not written (%s); retrying", self.job.id, exc)
                await asyncio.sleep(1.0)


class AuthUnavailable(RuntimeError):
    """The job's authorization cannot be used right now; the request is retried later."""


class DeliveryManager:
    """Runs a JobDelivery for every running job the registry knows; follows its changes."""

    def __init__(self, settings: Settings, registry: ConfigRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.client = WebhookClient(settings)
        self.producer: AIOKafkaProducer | None = None
        self.deliveries: dict[str, JobDelivery] = {}
        self._changes: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        key = settings.secret_key
        self.box = SecretBox(key.get_secret_value()) if key is not None else None

    async def start(self) -> None:
        await self.client.start()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        await self.producer.start()
        self.registry.subscribe(lambda job_id, _job: self._changes.put_nowait(job_id))
        await self.registry.ready.wait()
        for job_id in list(self.registry.jobs):
            self._changes.put_nowait(job_id)
        self._task = asyncio.create_task(self._follow(), name="delivery-manager")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for delivery in list(self.deliveries.values()):
            await delivery.stop()
        self.deliveries.clear()
        if self.producer is not None:
            await self.producer.stop()
        await self.client.close()

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
        if current is not None and (not wanted or stored is None or current.job != stored.config):
            await current.stop()
            del self.deliveries[job_id]
            current = None
        if wanted and current is None and stored is not None:
            assert self.producer is not None
            delivery = JobDelivery(
                stored.config, self.settings, self.registry, self.client, self.producer, self.box
            )
            await delivery.start()
            self.deliveries[job_id] = delivery
