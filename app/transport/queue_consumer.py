"""One job's queue topic, read by this worker's member of the job's delivery group.

What it guarantees (invariant 1 on the delivery side): a queue offset is committed only
once it and every offset before it was reported `finished` (delivered or dead-lettered).

- Each assigned partition is sought explicitly to its committed offset (its beginning if
  none); its next offset is tracked, so a record fetched before a rebalance and again after
  it is handed on once. Each assignment of a partition gets a number (`epoch`) that the
  records it hands on carry: a `finished` for an earlier assignment is ignored.
- Offsets finished beyond the commit point are stored as the commit's metadata
  (`encode_done`) and skipped after a restart or a move, instead of being sent again.
- Back-pressure pauses the partitions (the consumer keeps polling, or the group would drop
  it after `max.poll.interval.ms`) while more than `read_ahead` records are unfinished.
- The group's assignor (`WorkerCountAssignor`) gives the partitions to at most
  `worker_count` members and tells each its share, which `on_assigned` receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from app.domain.offsets import OffsetTracker, decode_done, encode_done
from app.settings import Settings
from app.transport.kafka import cancel_and_wait, group_timeouts
from app.transport.kafka_admin import SharedAdmin, admin_client, committed_offsets
from app.transport.kafka_security import connection_options
from app.transport.worker_count_assignor import WorkerCountAssignor

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.25

OnRecords = Callable[[TopicPartition, int, list[Any]], Awaitable[None]]
OnRevoked = Callable[[list[TopicPartition]], Awaitable[None]]
OnAssigned = Callable[[list[TopicPartition], int], Awaitable[None]]


QUEUE_FETCH_WAIT_MS = 1000


class QueueConsumer:
    """Hands a job's queue records to `on_records(tp, epoch, records)` in offset order per
    partition; commits what was reported `finished`."""

    def __init__(
        self,
        settings: Settings,
        group: str,
        topic: str,
        worker_count: int,
        read_ahead: int,
        on_records: OnRecords,
        on_revoked: OnRevoked,
        on_assigned: OnAssigned,
        admin: SharedAdmin | None = None,
    ) -> None:
        self.settings = settings
        self._admin = admin
        self.group = group
        self.topic = topic
        self.worker_count = worker_count
        self.read_ahead = read_ahead
        self._on_records = on_records
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.share = worker_count
        self.paused = False
        self._consumer: AIOKafkaConsumer | None = None
        self._next: dict[TopicPartition, int] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._epoch = 0
        self._starts: dict[TopicPartition, int] = {}  # where each assignment began
        self._skip: dict[TopicPartition, set[int]] = {}
        self._last_commit: dict[TopicPartition, tuple[int, str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._room = asyncio.Event()  # set when a paused queue may read again
        self._finished_some = asyncio.Event()  # offsets finished since the last commit

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1000,
            partition_assignment_strategy=(
                WorkerCountAssignor(self.worker_count, self._set_share),
            ),
            # An idle queue is long-polled: the broker answers as soon as a record arrives,
            # so a longer wait costs no latency, while every poll costs both sides CPU per
            # job (300 idle jobs polled every 100 ms kept 85 % of a core busy).
            fetch_max_wait_ms=QUEUE_FETCH_WAIT_MS,
            metadata_max_age_ms=30000,
            **group_timeouts(self.settings),
        )
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        self._tasks = [
            asyncio.create_task(self._consume(), name=f"consume-{self.topic}"),
            asyncio.create_task(self._commit_loop(), name=f"commit-{self.topic}"),
        ]

    async def stop_reading(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)

    async def stop(self) -> None:
        """Stop reading, commit what is finished, leave the group."""
        await self.stop_reading()
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self.commit()
            await self._consumer.stop()

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    def current(self, tp: TopicPartition, epoch: int) -> bool:
        """Whether `epoch` is the partition's current assignment here."""
        return self._epochs.get(tp) == epoch

    def finished(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        """The record is delivered or dead-lettered: its offset may be committed."""
        if self.current(tp, epoch):  # else read under an earlier assignment: not ours
            self.tracker.finished(tp, offset)
            self._finished_some.set()
            if self.paused and self._has_room():
                self._room.set()

    def _has_room(self) -> bool:
        """A paused queue reads again once half its read-ahead is finished."""
        return self.tracker.in_flight < self.read_ahead // 2

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

    def backlog(self) -> int:
        """Records not yet committed on the assigned partitions (from the last fetch's high
        watermark; a partition not fetched yet counts 0)."""
        consumer = self._consumer
        if consumer is None:
            return 0
        committable = self.tracker.committable()
        total = 0
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            done = committable.get(tp, self._starts.get(tp))
            if high is not None and done is not None:
                total += max(0, high - done)
        return total

    def forget(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.tracker.forget(tp)
            self._next.pop(tp, None)
            self._epochs.pop(tp, None)

    def diagnostics(self) -> dict[str, Any]:
        consumer = self._consumer
        return {
            "assigned": sorted(tp.partition for tp in self.assignment()),
            "paused": sorted(tp.partition for tp in consumer.paused()) if consumer else [],
            "share": self.share,
            "tracker": self.tracker.diagnostics(),
            "tasks_done": [t.get_name() for t in self._tasks if t.done()],
        }

    def _set_share(self, share: int) -> None:
        self.share = max(1, share)

    async def _revoked(self, revoked: list[TopicPartition]) -> None:
        await self._on_revoked(revoked)
        with contextlib.suppress(Exception):
            await self.commit()
        self.forget(revoked)

    async def _assigned(self, assigned: list[TopicPartition]) -> None:
        await self._start_partitions(assigned)
        await self._on_assigned(assigned, self.share if assigned else 0)

    async def _start_partitions(self, assigned: list[TopicPartition]) -> None:
        """Seek each assigned partition to its committed offset (its beginning if none) and
        read which offsets beyond it were already delivered (the commit's metadata)."""
        consumer = self._consumer
        if not assigned or consumer is None:
            return
        committed: dict[TopicPartition, Any] = {}
        try:
            if self._admin is not None:
                admin = await self._admin.client()
                committed = await committed_offsets(admin, self.group, assigned)
            else:
                async with admin_client(self.settings) as own:
                    committed = await committed_offsets(own, self.group, assigned)
        except Exception as exc:  # fall back to the consumer's view, without metadata
            log.warning("%s: could not read commit metadata: %s", self.group, exc)
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
            self._starts[tp] = start
            self._epoch += 1
            self._epochs[tp] = self._epoch

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            if self.tracker.in_flight >= self.read_ahead and not self.paused:
                consumer.pause(*consumer.assignment())
                self.paused = True
            elif self.paused and self._has_room():
                consumer.resume(*consumer.assignment())
                self.paused = False
            if self.paused:  # wait for room rather than poll: `finished` says when
                self._room.clear()
                if not self._has_room():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), 1.0)
                continue
            batches = await consumer.getmany(timeout_ms=QUEUE_FETCH_WAIT_MS)
            for tp, messages in batches.items():
                nxt = self._next.get(tp)
                if nxt is None:
                    continue  # not ours (any more): its owner reads it from the commit point
                epoch = self._epochs[tp]
                skip = self._skip.get(tp)
                fresh: list[Any] = []
                for msg in messages:
                    if msg.offset < nxt or not self.tracker.started(tp, msg.offset):
                        continue  # fetched before, e.g. before a rebalance and again after
                    nxt = msg.offset + 1
                    if skip and msg.offset in skip:
                        skip.discard(msg.offset)  # delivered before the restart
                        self.tracker.finished(tp, msg.offset)
                        self._finished_some.set()
                        continue
                    fresh.append(msg)
                self._next[tp] = nxt
                if fresh:
                    await self._on_records(tp, epoch, fresh)

    async def _commit_loop(self) -> None:
        """Commit at most every COMMIT_INTERVAL_S, and only after something finished (an
        idle job does not wake up)."""
        while True:
            await self._finished_some.wait()
            await asyncio.sleep(COMMIT_INTERVAL_S)
            self._finished_some.clear()
            try:
                await self.commit()
            except Exception as exc:  # a failed commit is retried on the next tick
                log.warning("%s: commit failed: %s", self.group, exc)
                self._finished_some.set()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: QueueConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner._revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner._assigned(list(assigned))
