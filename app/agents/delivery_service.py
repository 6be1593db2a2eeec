"""The delivery service: runs a `JobDelivery` for every running job of the delivery slots
this worker process holds (`app/domain/slots.py`, `SlotMembership`), all read through one
`QueueReader`; follows the registry's changes (apply, stop, resume, delete) and the slots'
moves without a restart, keeps the status of each job it holds on the status topic through
its `StatusPublisher`, and writes delivery start/stop to the job log.

What a job costs a worker does not grow with the number of jobs beyond its own tasks and
buffers: one group membership (the slots), one reader, one producer, one admin client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from app.agents.status_publisher import StatusPublisher
from app.delivery.job_delivery import JobDelivery
from app.delivery.job_signer import JobSigner
from app.domain.secrets import box_from_settings
from app.domain.slots import slot_of
from app.domain.status_summary import config_version
from app.domain.stored_job import StoredJob
from app.settings import Settings
from app.transport import metrics
from app.transport.auth_resolver import AuthResolver
from app.transport.http import WebhookClient
from app.transport.job_log import JobLog
from app.transport.job_queue import OlderWorkersRunning
from app.transport.kafka import cancel_and_wait, durable_producer
from app.transport.kafka_admin import SharedAdmin
from app.transport.queue_reader import QueueReader
from app.transport.registry import ConfigRegistry
from app.transport.slot_membership import SlotMembership
from app.transport.template_runner import TemplateRunner

log = logging.getLogger(__name__)

# Jobs (re)started at once: a worker with hundreds of jobs starts them side by side instead
# of one after the other (each start waits on broker round trips).
CONCURRENT_STARTS = 64


class DeliveryService:
    """Runs a JobDelivery for every running job; see the module docstring."""

    def __init__(self, settings: Settings, registry: ConfigRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self.client = WebhookClient(settings)
        self.templates = TemplateRunner(settings.template_processes, settings.template_timeout_s)
        self.producer: AIOKafkaProducer | None = None
        self.joblog: JobLog | None = None
        self.admin = SharedAdmin(settings)
        self.reader = QueueReader(settings)
        self.slots = SlotMembership(settings, self._slots_changed)
        self.held: set[int] = set()  # the slots whose jobs this process delivers
        self.deliveries: dict[str, JobDelivery] = {}
        self._signers: dict[str, JobSigner] = {}  # signed jobs' keys, updated in place
        self.status = StatusPublisher(settings)
        self._resumed_at: dict[str, float] = {}
        self._changes: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._reconciling: dict[str, asyncio.Task[None]] = {}  # job id -> its reconcile task
        self._again: set[str] = set()  # jobs that changed while being reconciled
        self._settled = asyncio.Event()  # a job's reconcile task ended
        self._start_slots = asyncio.Semaphore(CONCURRENT_STARTS)
        # With WEBHOOKS_SECRET_KEY_PREVIOUS too: secrets sealed under the previous key stay
        # readable until `webhooks auth rotate-key` re-seals them (the worker used to take
        # the current key only).
        box = box_from_settings(settings)
        self.box = box
        self.auths = AuthResolver(registry, box, self.client)

    async def start(self) -> None:
        await self.client.start()
        self.producer = durable_producer(self.settings)
        await self.producer.start()
        self.joblog = JobLog(self.settings, self.producer)
        await self.reader.start()
        self.registry.subscribe(lambda job_id, _job: self._changes.put_nowait(job_id))
        await self.registry.ready.wait()
        await self.status.load(self.registry.jobs)
        for job_id in list(self.registry.jobs):
            self._changes.put_nowait(job_id)  # a deleted one's status is tombstoned
        await self.slots.start()
        self._tasks = [
            asyncio.create_task(self._follow(), name="delivery-manager"),
            asyncio.create_task(
                self.status.run(self.producer, self.joblog, self.deliveries), name="job-status"
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        for task in list(self._reconciling.values()):
            await cancel_and_wait(task)
        # Side by side, as they start: one after the other, 300 jobs took 2 s to stop.
        stopped = await asyncio.gather(
            *(self._stop_delivery(d) for d in self.deliveries.values()), return_exceptions=True
        )
        for job_id, outcome in zip(list(self.deliveries), stopped, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("job %s: delivery did not stop cleanly: %r", job_id, outcome)
        self.deliveries.clear()
        # Only now, with every job stopped and committed, may the slots go to others.
        with contextlib.suppress(Exception):
            await self.slots.stop()
        with contextlib.suppress(Exception):
            await self.reader.stop()
        with contextlib.suppress(Exception):
            # A last record per job, marked final: this worker drops out of statuses at once.
            if self.producer is not None and self.joblog is not None:
                await self.status.write(self.producer, self.joblog, self.deliveries, final=True)
        if self.joblog is not None:
            await self.joblog.flush()
        if self.producer is not None:
            await self.producer.stop()
        with contextlib.suppress(Exception):
            await self.admin.close()
        await self.client.close()
        await self.templates.close()

    async def _stop_delivery(self, delivery: JobDelivery) -> None:
        async with self._start_slots:
            await delivery.stop()

    async def _slots_changed(self, taken: set[int], released: set[int]) -> None:
        """Start the jobs of the slots taken; hand over those of the slots released (their
        requests in flight end, their offsets are committed) before the slots are given up."""
        if taken:
            try:
                await self.status.learn_elsewhere()
            except Exception as exc:  # the jobs start as running here
                log.warning("could not read the statuses of jobs moving here: %s", exc)
        self.held = (self.held | taken) - released
        moved = taken | released
        jobs = [j for j in self.registry.jobs if slot_of(j) in moved]
        for job_id in jobs:
            self._changes.put_nowait(job_id)
        leaving = {j for j in jobs if slot_of(j) in released}
        while True:
            self._settled.clear()
            if not leaving & (set(self.deliveries) | set(self._reconciling)):
                return
            await self._settled.wait()

    async def _follow(self) -> None:
        """Reconcile each changed job in a task of its own: jobs start side by side (at most
        CONCURRENT_STARTS at once), while one job's changes are applied in order."""
        while True:
            job_id = await self._changes.get()
            if job_id in self._reconciling:
                self._again.add(job_id)  # its task runs once more when it is done
                continue
            self._reconciling[job_id] = asyncio.create_task(
                self._reconcile_until_settled(job_id), name=f"reconcile-{job_id}"
            )

    async def _reconcile_until_settled(self, job_id: str) -> None:
        try:
            while True:
                self._again.discard(job_id)
                try:
                    async with self._start_slots:
                        await self._reconcile(job_id, self.registry.jobs.get(job_id))
                except OlderWorkersRunning as exc:  # an upgrade in progress: wait for them
                    log.warning("job %s: not started yet: %s", job_id, exc)
                    await asyncio.sleep(5.0)
                    self._again.add(job_id)
                except Exception:
                    log.exception("job %s: could not (re)start delivery; retrying in 5 s", job_id)
                    await asyncio.sleep(5.0)
                    self._again.add(job_id)
                if job_id not in self._again:
                    return
        finally:
            self._reconciling.pop(job_id, None)
            self._settled.set()

    async def _reconcile(self, job_id: str, stored: StoredJob | None) -> None:
        current = self.deliveries.get(job_id)
        if stored is not None and slot_of(job_id) not in self.held:
            if current is not None:  # its slot moved to another worker process
                await current.hand_over()
                del self.deliveries[job_id]
                await self._log(job_id, f"delivery handed over by worker {self.settings.worker_id}")
            if self.status.release(job_id):
                metrics.job_left(job_id)
            return
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
            self._signers.pop(job_id, None)
            self.status.forget(job_id)  # a tombstone for the deleted job's status
            log.info("job %s deleted: delivery stopped", job_id)
            await self._log(job_id, f"job deleted: worker {self.settings.worker_id} forgot it")
            metrics.forget_job(job_id)
            return
        status = self.status.take(job_id, now)
        if not wanted:
            self.status.versions[job_id] = config_version(stored.config.to_json_dict())
            self.status.mark(job_id)
            if status.state != "stopped":
                status.state, status.since, status.next_run = "stopped", now, None
            return
        signer = self._signer(job_id, stored)
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
                self.reader,
                self.admin,
                signer,
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
        self.status.versions[job_id] = config_version(stored.config.to_json_dict())
        self.status.mark(job_id)  # report the version now, not at the next heartbeat

    def _signer(self, job_id: str, stored: StoredJob) -> JobSigner | None:
        """The job's signer with its current keys (None for a job that does not sign)."""
        if not stored.config.signed:
            self._signers.pop(job_id, None)
            return None
        signer = self._signers.setdefault(job_id, JobSigner(job_id))
        signer.update(stored.signing_keys, self.box)
        return signer

    async def _log(self, job_id: str, message: str, **details: Any) -> None:
        if self.joblog is not None:
            await self.joblog.write(job_id, "delivery", message, **details)
