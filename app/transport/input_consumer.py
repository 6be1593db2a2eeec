"""The router's input: the input topic read in whole batches by a consumer group of its own.

Why not Faust's consumer: at start-up with a backlog, faust-streaming 0.15 resumes the input
partitions before seeking them to their committed offsets, so records fetched during table
recovery reach the stream, are then cleared from its queue when flow control resumes, while
the seek's read offset makes the next fetch look like a gap that `_add_gap` marks as acked;
`_new_offset` then commits past the partition's first record (an off-by-one) or never
commits again. Hundreds of input records per partition were committed without being routed
(issue 15). Here nothing is marked done that the router did not confirm:

- Offsets are committed only up to the last record whose routed records the broker acked
  (`on_confirmed`), per partition, in input order.
- Each assigned partition is sought explicitly to its committed offset, and the offset of
  the next record to route is tracked per partition (`_next`). A record below it (a batch
  fetched before a rebalance, fetched again after) is skipped; nothing above it is ever
  marked done without being routed, so a stale or repeated fetch cannot lose a record.
- On revocation, everything submitted is confirmed and committed before the partitions are
  given up; the state of a partition is restored from its changelog before its first record
  is routed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from app.settings import Settings
from app.transport import metrics
from app.transport.kafka import cancel_and_wait, group_timeouts
from app.transport.kafka_admin import admin_client
from app.transport.kafka_security import connection_options
from app.transport.state_store import StateStore

log = logging.getLogger(__name__)

FETCH_MAX_RECORDS = 2000
COMMIT_INTERVAL_S = 0.2


def router_group(settings: Settings) -> str:
    """The input topic's consumer group (Faust's own group, the app id, now only elects its
    leader)."""
    return f"{settings.app_id}-router"


class Submitter(Protocol):
    """What the consumer needs of the router (kept narrow so either side can change)."""

    async def submit(self, records: Sequence[Any]) -> None: ...

    async def drain(self) -> None: ...


class InputConsumer:
    """Feeds the router whole batches of input records; commits what it confirmed."""

    def __init__(
        self,
        settings: Settings,
        router: Submitter,
        store: StateStore,
        on_fatal: Callable[[BaseException], Awaitable[None]],
        on_ready: Callable[[set[int]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.store = store
        self._on_fatal = on_fatal
        self._on_ready = on_ready
        self.topic = settings.input_topic
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()  # a batch being submitted, or a rebalance step
        self._commit_lock = asyncio.Lock()
        self._owned: set[int] = set()
        self._next: dict[int, int] = {}  # next offset to route, per owned partition
        self._confirmed: dict[int, int] = {}  # next offset after the last confirmed record
        self._committed: dict[int, int] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self.assigned_once = asyncio.Event()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            group_id=router_group(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=FETCH_MAX_RECORDS,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=2 * 1024 * 1024,
            **group_timeouts(self.settings),
        )
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()
        self._tasks = [
            asyncio.create_task(self._supervised(self._run()), name="input-consumer"),
            asyncio.create_task(self._supervised(self._commit_loop()), name="input-commits"),
        ]

    async def stop(self) -> None:
        """Finish the batch in hand, wait for its acks, commit, leave the group."""
        self._stopping = True
        async with self._lock:
            for task in self._tasks:
                await cancel_and_wait(task)
            drained = False
            try:
                async with asyncio.timeout(20):
                    await self.router.drain()
                drained = True
                await self._commit()
            except (TimeoutError, KafkaError) as exc:
                log.warning(
                    "input offsets not committed at stop (%r); those records are routed again",
                    exc,
                )
            if drained:  # every state change is in the changelog: the maps can be saved
                try:
                    await self.store.save_snapshots()
                except KafkaError as exc:
                    log.warning("state snapshots not written at stop (%r)", exc)
        if self._consumer is not None:
            await self._consumer.stop()

    def on_confirmed(self, records: Sequence[Any]) -> None:
        """The router's records for `records` are acknowledged: their offsets are done."""
        confirmed = self._confirmed
        for record in records:
            nxt = record.offset + 1
            if nxt > confirmed.get(record.partition, -1):
                confirmed[record.partition] = nxt

    async def _supervised(self, work: Awaitable[None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.exception("input consumer failed; stopping the worker so a restart resumes")
            await self._on_fatal(exc)

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping:
            batches = await consumer.getmany(timeout_ms=200, max_records=FETCH_MAX_RECORDS)
            if not batches:
                continue
            async with self._lock:
                records = self._in_order(batches)
                if records:
                    await self.router.submit(records)

    def _in_order(self, batches: dict[TopicPartition, list[Any]]) -> list[Any]:
        """The records to route: owned partitions only, each from its next offset on."""
        out: list[Any] = []
        for tp, records in batches.items():
            nxt = self._next.get(tp.partition)
            if nxt is None or not records:
                continue  # not ours (any more): its owner reads it from the commit point
            fresh = [r for r in records if r.offset >= nxt] if records[0].offset < nxt else records
            if not fresh:
                continue
            # fresh[0].offset > nxt is fine: offsets without a record here (transaction
            # markers, aborted or compacted records); the fetch position only moves past
            # what the fetch returned.
            self._next[tp.partition] = fresh[-1].offset + 1
            out.extend(fresh)
        return out

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            try:
                await self._commit()
            except KafkaError as exc:
                log.info("input commit deferred (%r)", exc)
            metrics.ROUTER_LAG.set(self.lag())

    def lag(self) -> int:
        """Input records not yet routed on the owned partitions (from the last fetch's
        high watermark; 0 for a partition not fetched yet)."""
        consumer = self._consumer
        if consumer is None:
            return 0
        total = 0
        for p, nxt in list(self._next.items()):
            high = consumer.highwater(TopicPartition(self.topic, p))
            if high is not None:
                total += max(0, high - nxt)
        return total

    async def _commit(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        async with self._commit_lock:
            offsets = {
                TopicPartition(self.topic, p): OffsetAndMetadata(o, "")
                for p, o in self._confirmed.items()
                if p in self._owned and o > self._committed.get(p, -1)
            }
            if not offsets:
                return
            await consumer.commit(offsets)
            for tp, meta in offsets.items():
                self._committed[tp.partition] = meta.offset

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            try:
                await self.router.drain()
                await self._commit()
            except KafkaError as exc:
                log.warning("commit before rebalance failed (%r); records are routed again", exc)
            parts = {tp.partition for tp in revoked if tp.topic == self.topic}
            for p in parts:
                self._owned.discard(p)
                self._next.pop(p, None)
                self._confirmed.pop(p, None)
                self._committed.pop(p, None)
            await self.store.release(parts)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        async with self._lock:
            tps = sorted(
                (tp for tp in assigned if tp.topic == self.topic), key=lambda t: t.partition
            )
            parts = {tp.partition for tp in tps}
            await self.store.assign(parts)
            self.store.drop_released()
            starts = await self._start_offsets(consumer, tps)
            for tp in tps:
                consumer.seek(tp, starts[tp])
                self._next[tp.partition] = starts[tp]
                self._committed[tp.partition] = starts[tp]
            self._owned = parts
            log.info("input partitions assigned: %s", sorted(parts))
            if self._on_ready is not None:
                self._on_ready(parts)
            self.assigned_once.set()

    async def _start_offsets(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Committed offsets; for a partition this group never committed, the offset the
        Faust-consumer versions committed under the app id (so an upgrade neither replays
        nor skips input), else the partition's beginning."""
        if not tps:
            return {}
        starts: dict[TopicPartition, int] = {}
        missing: list[TopicPartition] = []
        for tp in tps:
            committed = await consumer.committed(tp)
            if committed is not None and committed >= 0:
                starts[tp] = committed
            else:
                missing.append(tp)
        if missing:
            legacy = await self._legacy_offsets()
            firsts = await consumer.beginning_offsets(missing)
            for tp in missing:
                starts[tp] = max(legacy.get(tp, firsts[tp]), firsts[tp])
        return starts

    async def _legacy_offsets(self) -> dict[TopicPartition, int]:
        try:
            async with admin_client(self.settings) as admin:
                found = await admin.list_consumer_group_offsets(self.settings.app_id)
        except (KafkaError, OSError, RuntimeError) as exc:
            log.warning("could not read the legacy router offsets (%r)", exc)
            return {}
        return {
            tp: meta.offset
            for tp, meta in found.items()
            if tp.topic == self.topic and meta is not None and meta.offset >= 0
        }


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: InputConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.on_assigned(set(assigned))
