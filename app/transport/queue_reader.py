"""The one reader of every job queue this worker process delivers.

One aiokafka consumer without a group reads the partitions of all the jobs this process
holds (`app/domain/slots.py`): one fetch request per broker for all of them, however many
jobs there are, and no group membership, heartbeat or commit loop per job. Each job is a
`JobQueue` (`job_queue.py`): it decides where its partitions start, takes the records
handed to it and commits its own offsets.

- Adding or removing a job is local: the assignment is replaced and, with no `await` in
  between, every partition is sought to the next offset its job expects and paused again if
  its job is paused. Records fetched but not yet handed on are fetched again; none is lost
  or handed on twice (the job's `take` drops offsets below its next one). Changes made within
  `REASSIGN_DELAY_S` are applied as one (a worker starting 1 000 jobs re-assigns a few
  times, not 1 000 times); a job removed meanwhile is no longer handed anything.
- A job that must not read (too much in flight, or stopping) is paused: its partitions keep
  their positions and are left out of the fetch request; the other jobs read on.
- Handing records on never waits for a job (`JobQueue.take` only appends to the job's inbox),
  so a slow template, endpoint or dead-letter write delays only its own job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.settings import Settings
from app.transport.kafka import cancel_and_wait, start_client
from app.transport.kafka_security import connection_options

log = logging.getLogger(__name__)

# Queues are long-polled: the broker answers as soon as a record arrives, so the wait costs
# no latency for records, while each poll costs both sides CPU: decoding the (empty) answer
# for every partition of every job (aiokafka has no incremental fetch sessions) was most of
# an idle worker's CPU, 20 % of a core for 1 000 jobs polled every second.
# But the broker answers one request per connection at a time: a fetch sent after a
# re-assign (and the metadata request for the new topics that aiokafka sends first) waits
# behind the poll in flight, whose partitions are often quiet. Starting 1 000 jobs re-assigns
# in waves, each wave waited one poll: half the jobs first delivered ~20 s after the start.
# So the wait is:
# - ADDING_FETCH_WAIT_MS for ADDING_S after a re-assign (jobs are starting: each wave
#   waits a short poll at most);
# - IDLE_FETCH_WAIT_MS once nothing at all happened for IDLE_AFTER_S (no record, no
#   re-assign, no job paused); a job added to such a reader waits for that poll once;
# - QUEUE_FETCH_WAIT_MS otherwise.
QUEUE_FETCH_WAIT_MS = 1000
ADDING_FETCH_WAIT_MS = 100
ADDING_S = 2.0
IDLE_FETCH_WAIT_MS = 5000
IDLE_AFTER_S = 10.0
REASSIGN_DELAY_S = 0.02


class Reads(Protocol):
    """What the reader needs of a job's queue."""

    topic: str
    partitions: list[TopicPartition]
    paused: bool

    def position(self, tp: TopicPartition) -> int: ...

    def take(self, tp: TopicPartition, records: list[Any]) -> None: ...


class QueueReader:
    """Reads the queues of the jobs added to it; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queues: dict[str, Reads] = {}
        self.reassignments = 0
        self._by_tp: dict[TopicPartition, Reads] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending = False
        self._has_partitions = asyncio.Event()
        self._active_at = time.monotonic()  # the last record, re-assign or resume
        self._reassigned_at = 0.0
        self.fetch_wait_ms = QUEUE_FETCH_WAIT_MS

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # an offset gone by retention: its first one kept
            max_poll_records=2000,
            fetch_max_wait_ms=QUEUE_FETCH_WAIT_MS,
            metadata_max_age_ms=30000,
        )
        await start_client(self.settings, self._consumer)
        self._task = asyncio.create_task(self._read(), name="queue-reader")

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None  # a pending re-assign does nothing
        await cancel_and_wait(self._task)
        if consumer is not None:
            await consumer.stop()

    def add(self, queue: Reads) -> None:
        self.queues[queue.topic] = queue
        self._schedule()

    def remove(self, queue: Reads) -> None:
        if self.queues.get(queue.topic) is queue:
            del self.queues[queue.topic]
            self._schedule()

    def pause(self, queue: Reads) -> None:
        if self._consumer is not None and self.queues.get(queue.topic) is queue:
            self._consumer.pause(*self._assigned(queue))

    def resume(self, queue: Reads) -> None:
        if self._consumer is not None and self.queues.get(queue.topic) is queue:
            self._consumer.resume(*self._assigned(queue))
            self._active()

    def highwater(self, tp: TopicPartition) -> int | None:
        if self._consumer is None or tp not in self._by_tp:
            return None
        high: int | None = self._consumer.highwater(tp)
        return high

    def diagnostics(self) -> dict[str, Any]:
        consumer = self._consumer
        return {
            "jobs": len(self.queues),
            "partitions": len(self._by_tp),
            "paused": len(consumer.paused()) if consumer is not None else 0,
            "reassignments": self.reassignments,
            "reading": self._task is not None and not self._task.done(),
            "fetch_wait_ms": self.fetch_wait_ms,
        }

    def _assigned(self, queue: Reads) -> list[TopicPartition]:
        return [tp for tp in queue.partitions if self._by_tp.get(tp) is queue]

    def _schedule(self) -> None:
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_later(REASSIGN_DELAY_S, self._reassign)

    def _reassign(self) -> None:
        """Assign every queue's partitions, seek each to where its job goes on, and pause
        those of paused jobs: synchronously, so no fetch result lands in between."""
        self._pending = False
        consumer = self._consumer
        if consumer is None:
            return
        by_tp = {tp: q for q in self.queues.values() for tp in q.partitions}
        self._by_tp = by_tp
        self.reassignments += 1
        if by_tp:
            self._has_partitions.set()
        else:
            self._has_partitions.clear()
        consumer.assign(list(by_tp))
        paused = []
        for tp, queue in by_tp.items():
            consumer.seek(tp, queue.position(tp))
            if queue.paused:
                paused.append(tp)
        if paused:
            consumer.pause(*paused)
        self._active_at = self._reassigned_at = time.monotonic()
        self._update_fetch_wait()

    def _active(self) -> None:
        self._active_at = time.monotonic()
        self._update_fetch_wait()

    def _update_fetch_wait(self) -> None:
        """The long-poll wait of the next fetches, from what happened when (see the
        constants); aiokafka reads it per fetch request."""
        now = time.monotonic()
        if now - self._reassigned_at <= ADDING_S:
            wait_ms = ADDING_FETCH_WAIT_MS
        elif now - self._active_at > IDLE_AFTER_S:
            wait_ms = IDLE_FETCH_WAIT_MS
        else:
            wait_ms = QUEUE_FETCH_WAIT_MS
        fetcher = self._consumer._fetcher if self._consumer is not None else None
        if fetcher is not None and wait_ms != self.fetch_wait_ms:
            fetcher._fetch_max_wait_ms = wait_ms
            self.fetch_wait_ms = wait_ms

    async def _read(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            await self._has_partitions.wait()  # with nothing assigned getmany would spin
            batches = await consumer.getmany(timeout_ms=QUEUE_FETCH_WAIT_MS)
            for tp, records in batches.items():
                queue = self._by_tp.get(tp)
                if queue is not None and records:
                    queue.take(tp, records)
            if batches or consumer.paused():
                self._active()
            else:
                self._update_fetch_wait()
