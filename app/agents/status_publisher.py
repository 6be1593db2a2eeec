"""A worker's job statuses on the status topic: one record per job and worker (key
`<job id>/<worker id>`) written when it changes and at every heartbeat
(`status_heartbeat_s`), the worker's own liveness record (`_worker/<worker id>`), a
tombstone for a deleted job, a final record on stop; plus a `state` entry in the job log
for every state change, and the state and backlog gauges."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaProducer

from app.delivery.job_delivery import JobDelivery
from app.domain.job_log import without_answer
from app.domain.job_state import JobStatus, carry_state
from app.domain.status_record import (
    WORKER_RECORD,
    decode_status,
    decode_status_record,
    encode_status_record,
    split_status_key,
    status_key,
)
from app.domain.timefmt import rfc3339
from app.settings import Settings
from app.transport import metrics
from app.transport.job_log import JobLog
from app.transport.kafka import read_compacted

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0


class StatusPublisher:
    """This worker's statuses of the jobs it holds (`statuses`, shared with the jobs'
    deliveries, which update them in place) and the versions it runs (`versions`);
    `mark(job_id)` asks for that job's record to be written on the next tick.

    A job this worker does not hold (its delivery slot is another process's) is not reported:
    its status is parked (kept, with its counters, for when the job comes back), and its
    record is written once more marked `final`, so it drops out of the job's state at once
    while its counters still count."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.statuses: dict[str, JobStatus] = {}
        self.versions: dict[str, str] = {}  # job id -> config version it runs (or holds)
        self._logged_states: dict[str, str] = {}  # job id -> state last written to its log
        self._last_heartbeat = 0.0
        self._dirty: set[str] = set()
        self._parked: dict[str, JobStatus] = {}
        self._final: set[str] = set()  # parked jobs whose last record is still to write
        self._elsewhere: dict[str, JobStatus] = {}  # other workers' latest, of jobs moving here

    def take(self, job_id: str, now: float) -> JobStatus:
        """This worker holds the job (again): its status, reported from now on."""
        status = self.statuses.get(job_id)
        if status is None:
            status = self._parked.pop(job_id, None) or JobStatus(since=now)
            previous = self._elsewhere.pop(job_id, None)
            if previous is not None:
                carry_state(status, previous)
            self.statuses[job_id] = status
            self._final.discard(job_id)
            self._dirty.add(job_id)
        return status

    def release(self, job_id: str) -> bool:
        """Another worker holds the job now: write its record once, `final`, then stop.
        True if this worker was reporting it."""
        status = self.statuses.pop(job_id, None)
        if status is not None:
            self._parked[job_id] = status
            self._final.add(job_id)
            self._dirty.add(job_id)
        self.versions.pop(job_id, None)
        return status is not None

    def mark(self, job_id: str) -> None:
        self._dirty.add(job_id)

    def forget(self, job_id: str) -> None:
        """A deleted job: its status record is tombstoned on the next tick."""
        self.versions.pop(job_id, None)
        if self.statuses.pop(job_id, None) is not None or job_id in self._parked:
            self._dirty.add(job_id)
        self._parked.pop(job_id, None)
        self._final.discard(job_id)
        self._logged_states.pop(job_id, None)

    async def load(self, known_jobs: Mapping[str, object]) -> None:
        """This worker's statuses as it last wrote them (they survive restarts); those of
        jobs deleted while it was down are tombstoned. They are parked until `take`."""
        self._parked = await self._read_own_statuses()
        self._logged_states = {job_id: st.state for job_id, st in self._parked.items()}
        for job_id in list(self._parked):
            if job_id not in known_jobs:
                del self._parked[job_id]
                self._dirty.add(job_id)

    async def learn_elsewhere(self) -> None:
        """Read the latest status other workers wrote of each job (before jobs move here, so
        `take` carries their state over)."""
        latest: dict[str, tuple[float, JobStatus]] = {}
        view = await read_compacted(self.settings, self.settings.status_topic)
        for key, value in view.items():
            parts = split_status_key(key.decode(errors="replace"))
            if parts is None or parts[1] == self.settings.worker_id or parts[0] == WORKER_RECORD:
                continue
            doc = decode_status_record(value)
            status = decode_status(value)
            if doc is None or status is None:
                continue
            updated = doc.get("updated_at")
            at = float(updated) if isinstance(updated, int | float) else 0.0
            if parts[0] not in latest or at > latest[parts[0]][0]:
                latest[parts[0]] = (at, status)
        self._elsewhere = {job_id: status for job_id, (_at, status) in latest.items()}

    async def _read_own_statuses(self) -> dict[str, JobStatus]:
        """This worker's job statuses as it last wrote them (they survive restarts)."""
        out: dict[str, JobStatus] = {}
        view = await read_compacted(self.settings, self.settings.status_topic)
        for key, value in view.items():
            parts = split_status_key(key.decode(errors="replace"))
            if parts is None or parts[1] != self.settings.worker_id or parts[0] == WORKER_RECORD:
                continue
            status = decode_status(value)
            if status is None:
                log.warning("ignoring unreadable status of job %s", parts[0])
                continue
            out[parts[0]] = status
        return out

    async def run(
        self,
        producer: AIOKafkaProducer,
        joblog: JobLog,
        deliveries: Mapping[str, JobDelivery],
    ) -> None:
        """Write the statuses every STATUS_INTERVAL_S until cancelled."""
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            try:
                await self.write(producer, joblog, deliveries)
            except Exception as exc:  # retried on the next tick
                log.warning("could not write job statuses: %s", exc)

    async def write(
        self,
        producer: AIOKafkaProducer,
        joblog: JobLog,
        deliveries: Mapping[str, JobDelivery],
        final: bool = False,
    ) -> None:
        """Write the changed statuses; every status each heartbeat (its `updated_at` is
        what tells readers this worker is alive), and all of them, `final`, on stop."""
        for job_id, delivery in deliveries.items():
            if delivery.machine.take_changed():
                self._dirty.add(job_id)
        await self._log_transitions(joblog)
        self._update_gauges(deliveries)
        heartbeat = (
            final or time.monotonic() - self._last_heartbeat >= self.settings.status_heartbeat_s
        )
        if heartbeat:
            self._dirty |= set(self.statuses)
            self._last_heartbeat = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        try:
            acks = []
            for job_id in dirty:
                status = self.statuses.get(job_id)
                last = status is None and job_id in self._final
                if last:
                    status = self._parked.get(job_id)
                value = None
                if status is not None:
                    value = encode_status_record(
                        job_id,
                        self.settings.worker_id,
                        status,
                        self.versions.get(job_id),
                        time.time(),
                        final or last,
                    )
                key = status_key(job_id, self.settings.worker_id)
                acks.append(await producer.send(self.settings.status_topic, value, key=key))
            if heartbeat:  # this worker is live even while it runs no job
                me = self.settings.worker_id
                value = encode_status_record(
                    WORKER_RECORD, me, JobStatus(), None, time.time(), final
                )
                key = status_key(WORKER_RECORD, me)
                acks.append(await producer.send(self.settings.status_topic, value, key=key))
            # All sent, then all awaited: one round trip for hundreds of jobs, not one each.
            await asyncio.gather(*acks)
            self._final -= dirty
        except Exception:
            self._dirty |= dirty
            raise

    def _update_gauges(self, deliveries: Mapping[str, JobDelivery]) -> None:
        for job_id, status in self.statuses.items():
            metrics.set_job_state(job_id, status.state)
        for job_id, delivery in deliveries.items():
            metrics.BACKLOG.labels(job_id).set(delivery.queue.backlog())

    async def _log_transitions(self, joblog: JobLog) -> None:
        """A `state` entry in the job log for every state change since the last look."""
        for job_id, status in list(self.statuses.items()):
            before = self._logged_states.get(job_id)
            if before == status.state:
                continue
            self._logged_states[job_id] = status.state
            if before is None and status.state == "running":
                continue  # a new job: its `delivery` entry says so
            reason = _transition_reason(status)
            level = logging.WARNING if status.state in ("error", "failed") else logging.INFO
            log.log(
                level,
                "job %s: state %s -> %s%s",
                job_id,
                before or "new",
                status.state,
                f": {reason}" if reason else "",
            )
            if reason:  # the receiver's answer stays in `jobs show`, not in the log
                reason = without_answer(reason)
            await joblog.write(
                job_id,
                "state",
                f"{before or 'new'} -> {status.state}" + (f": {reason}" if reason else ""),
                **{"from": before, "to": status.state},
                reason=reason,
                next_run=rfc3339(status.next_run),
            )


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
