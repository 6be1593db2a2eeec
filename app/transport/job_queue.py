"""One job's queue topic on the worker process that delivers the job.

Read through the process's shared `QueueReader`; the offsets are kept where they always were,
in the job's own consumer group (`delivery_group`), which now has no members: the job has
one deliverer at a time (its delivery slot's holder, `app/domain/slots.py`), which commits
into the group directly (`commit_group_offsets`). Upgrading from the versions that had a
consumer per job and worker therefore carries the committed offsets over unchanged: nothing
is replayed or skipped. A job whose group still has members (an older worker still running
it) is not started until they have left.

What it guarantees (invariant 1 on the delivery side): a queue offset is committed only
once it and every offset before it was reported `finished` (delivered or dead-lettered).

- Each partition starts at its committed offset (its first one when none, or when that one
  is gone); its next offset is tracked, so a record fetched again after the reader changed
  its assignment is handed on once.
- Offsets finished beyond the commit point are stored as the commit's metadata
  (`encode_done`) and skipped after a restart or a move, instead of being sent again.
- Back-pressure pauses the job's partitions in the reader while more than `read_ahead`
  records are unfinished; records are handed to the job through an inbox, so the reader
  never waits for a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from app.domain.offsets import OffsetTracker, decode_done, encode_done
from app.transport.group_offsets import (
    CommitRefused,
    commit_group_offsets,
    committed_offsets,
    group_member_count,
)
from app.transport.kafka import cancel_and_wait
from app.transport.kafka_admin import SharedAdmin
from app.transport.queue_reader import QueueReader

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.25
OLD_MEMBERS_RECHECK_S = 5.0
EPOCH = 1  # one JobQueue per start: its records are all of one "assignment"

OnRecords = Callable[[TopicPartition, int, list[Any]], Awaitable[None]]


class OlderWorkersRunning(RuntimeError):
    """The job's group still has members: workers of the version with a consumer per job."""


class JobQueue:
    """Hands a job's queue records to `on_records(tp, epoch, records)` in offset order per
    partition, in its own task; commits what was reported `finished`."""

    def __init__(
        self,
        reader: QueueReader,
        admin: SharedAdmin,
        group: str,
        topic: str,
        worker_count: int,
        read_ahead: int,
        on_records: OnRecords,
    ) -> None:
        self.reader = reader
        self.admin = admin
        self.group = group
        self.topic = topic
        self.share = worker_count  # the whole job is delivered here
        self.read_ahead = read_ahead
        self._on_records = on_records
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.partitions: list[TopicPartition] = []
        self.paused = False
        self._next: dict[TopicPartition, int] = {}
        self._skip: dict[TopicPartition, set[int]] = {}
        self._last_commit: dict[TopicPartition, tuple[int, str]] = {}
        self._inbox: deque[tuple[TopicPartition, list[Any]]] = deque()
        self._arrived = asyncio.Event()
        self._finished_some = asyncio.Event()  # offsets finished since the last commit
        self._tasks: list[asyncio.Task[None]] = []
        self._reading = False

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Find where each partition goes on (waiting while an older worker's consumers are
        still in the job's group), then join the reader."""
        admin = await self.admin.client()
        coordinator = await self.admin.coordinator(self.group)
        members = await group_member_count(admin, self.group, coordinator)
        if members:
            raise OlderWorkersRunning(
                f"{members} consumer(s) of an older version are still in group {self.group}; "
                "the job starts here once they have stopped"
            )
        described = await admin.describe_topics([self.topic])
        counts = [len(t.get("partitions", [])) for t in described if t.get("error_code") == 0]
        if not counts or counts[0] == 0:
            raise RuntimeError(f"queue topic {self.topic} not found")
        self.partitions = [TopicPartition(self.topic, p) for p in range(counts[0])]
        committed = await committed_offsets(
            admin, self.group, self.partitions, coordinator=coordinator
        )
        for tp in self.partitions:
            meta = committed.get(tp)
            start = 0  # its first offset: one below the log start resets to the first kept
            if meta is not None and meta.offset >= 0:
                start = meta.offset
                if meta.metadata:
                    self._skip[tp] = decode_done(meta.offset, meta.metadata)
            self._next[tp] = start
        self._tasks = [
            asyncio.create_task(self._hand_on(), name=f"records-{self.topic}"),
            asyncio.create_task(self._commit_loop(), name=f"commit-{self.topic}"),
        ]
        self._reading = True
        self.reader.add(self)

    async def stop_reading(self) -> None:
        """Read no more: leave the reader and drop what was not handed on yet."""
        if self._reading:
            self.reader.remove(self)
            self._reading = False
        self._inbox.clear()
        if self._tasks:
            await cancel_and_wait(self._tasks[0])

    async def stop(self) -> None:
        """Stop reading and commit what is finished."""
        await self.stop_reading()
        for task in self._tasks[1:]:
            await cancel_and_wait(task)
        with contextlib.suppress(Exception):
            await self.commit()

    # -- the reader's side -------------------------------------------------------------------

    def position(self, tp: TopicPartition) -> int:
        return self._next.get(tp, 0)

    def take(self, tp: TopicPartition, records: list[Any]) -> None:
        """Records fetched for `tp` (from the reader; must not wait)."""
        nxt = self._next.get(tp)
        if nxt is None or not self._reading:
            return
        skip = self._skip.get(tp)
        fresh: list[Any] = []
        for msg in records:
            if msg.offset < nxt or not self.tracker.started(tp, msg.offset):
                continue  # fetched before, e.g. before the reader's assignment changed
            nxt = msg.offset + 1
            if skip and msg.offset in skip:
                skip.discard(msg.offset)  # delivered before the restart
                self.tracker.finished(tp, msg.offset)
                self._finished_some.set()
                continue
            fresh.append(msg)
        self._next[tp] = nxt
        if fresh:
            self._inbox.append((tp, fresh))
            self._arrived.set()
        if self.tracker.in_flight >= self.read_ahead and not self.paused:
            self.paused = True
            self.reader.pause(self)

    # -- the job's side ----------------------------------------------------------------------

    def current(self, tp: TopicPartition, epoch: int) -> bool:
        """Whether records read with `epoch` still belong to this queue here."""
        return epoch == EPOCH and self._reading and tp in self._next

    def finished(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        """The record is delivered or dead-lettered: its offset may be committed."""
        if epoch != EPOCH:
            return
        self.tracker.finished(tp, offset)
        self._finished_some.set()
        if self.paused and self.tracker.in_flight < self.read_ahead // 2 and self._reading:
            self.paused = False  # read again once half the read-ahead is finished
            self.reader.resume(self)

    async def commit(self) -> None:
        """Commit each partition's contiguous point, with the offsets already finished beyond
        it as metadata (see `encode_done`), so a restart does not send those again."""
        offsets = self.tracker.committable()
        with_meta = {
            tp: (off, encode_done(off, self.tracker.done_above(tp))) for tp, off in offsets.items()
        }
        if with_meta and with_meta != self._last_commit:
            await commit_group_offsets(await self.admin.client(), self.group, with_meta)
            self._last_commit = with_meta

    def backlog(self) -> int:
        """Records not yet committed (from the last fetch's high watermark; a partition not
        fetched yet counts 0)."""
        committable = self.tracker.committable()
        total = 0
        for tp in self.partitions:
            high = self.reader.highwater(tp)
            done = committable.get(tp, self._next.get(tp))
            if high is not None and done is not None:
                total += max(0, high - done)
        return total

    def diagnostics(self) -> dict[str, Any]:
        return {
            "partitions": [tp.partition for tp in self.partitions],
            "paused": self.paused,
            "reading": self._reading,
            "inbox": len(self._inbox),
            "tracker": self.tracker.diagnostics(),
            "tasks_done": [t.get_name() for t in self._tasks if t.done()],
        }

    async def _hand_on(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._inbox:
                tp, records = self._inbox.popleft()
                await self._on_records(tp, EPOCH, records)

    async def _commit_loop(self) -> None:
        """Commit at most every COMMIT_INTERVAL_S, and only after something finished (an
        idle job does not wake up)."""
        while True:
            await self._finished_some.wait()
            await asyncio.sleep(COMMIT_INTERVAL_S)
            self._finished_some.clear()
            try:
                await self.commit()
            except CommitRefused as exc:
                log.error("%s: %s (is an older worker still running this job?)", self.topic, exc)
                self._finished_some.set()
                await asyncio.sleep(OLD_MEMBERS_RECHECK_S)
            except (KafkaError, OSError) as exc:  # retried on the next tick
                log.warning("%s: commit failed: %s", self.group, exc)
                self._finished_some.set()
