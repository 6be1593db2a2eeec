"""The router's per-user state, one map per input partition, backed by a compacted changelog.

The changelog (`<app id>-user-state-changelog`) is co-partitioned with the input topic: the
state of a user whose records arrive on input partition p lives on changelog partition p.
The router writes every state change to it and waits for the broker's ack before it commits
the input offset that caused the change, so the changelog is never behind a committed input
offset. A partition's map is rebuilt from its changelog when the partition is assigned.

A partition given up in a rebalance keeps its map together with the changelog's end offset
at that moment; if the partition comes back (the usual case in an eager rebalance), only
what other workers wrote since is read, not the whole partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.settings import Settings
from app.transport.kafka_security import connection_options

log = logging.getLogger(__name__)

RESTORE_BATCH = 10_000


class StateStore:
    """Per-partition user state: `get`/`put` by (partition, key); restored from a changelog."""

    def __init__(self, settings: Settings, changelog_topic: str) -> None:
        self.settings = settings
        self.changelog_topic = changelog_topic
        self._maps: dict[int, dict[bytes, bytes]] = {}
        self._released_maps: dict[int, dict[bytes, bytes]] = {}
        self._released_at: dict[int, int] = {}  # partition -> changelog end when released

    def size(self) -> int:
        """Entries (users and markers) of the assigned partitions."""
        return sum(len(m) for m in self._maps.values())

    def partition(self, partition: int) -> dict[bytes, bytes]:
        """The live map of an assigned partition (KeyError when not assigned)."""
        return self._maps[partition]

    async def release(self, partitions: Iterable[int]) -> None:
        """Stop serving `partitions`; keep their maps and where the changelog ended."""
        parts = [p for p in partitions if p in self._maps]
        if not parts:
            return
        ends = await self._end_offsets(parts)
        for p in parts:
            self._released_at[p] = ends[p]
            self._released_maps[p] = self._maps.pop(p)

    async def assign(self, partitions: Iterable[int]) -> None:
        """Serve `partitions`: bring each map up to the changelog's current end."""
        wanted = sorted(set(partitions) - set(self._maps))
        if not wanted:
            return
        started = time.monotonic()
        starts: dict[int, int | None] = {}
        for p in wanted:
            kept = self._released_maps.pop(p, None)
            if kept is not None and p in self._released_at:
                self._maps[p] = kept
                starts[p] = self._released_at.pop(p)
            else:
                self._released_at.pop(p, None)
                self._maps[p] = {}
                starts[p] = None  # from the beginning
        read = await self._restore(starts)
        log.info(
            "state restored for partition(s) %s: %d changelog record(s) read, %d user(s), %.1f s",
            wanted,
            read,
            sum(len(self._maps[p]) for p in wanted),
            time.monotonic() - started,
        )

    def drop_released(self) -> None:
        """Forget maps of partitions that were not assigned back."""
        self._released_maps.clear()
        self._released_at.clear()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **connection_options(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=30000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        )

    async def _end_offsets(self, partitions: list[int]) -> dict[int, int]:
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = [TopicPartition(self.changelog_topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()

    async def _restore(self, starts: dict[int, int | None]) -> int:
        """Apply changelog records from each partition's start (None: the beginning) to the
        end offset seen now; a record without a value deletes the key."""
        consumer = self._consumer()
        await consumer.start()
        read = 0
        try:
            tps = {p: TopicPartition(self.changelog_topic, p) for p in starts}
            consumer.assign(list(tps.values()))
            ends = await consumer.end_offsets(list(tps.values()))
            firsts = await consumer.beginning_offsets(list(tps.values()))
            remaining: set[TopicPartition] = set()
            for p, tp in tps.items():
                start = starts[p]
                begin = firsts[tp] if start is None else max(start, firsts[tp])
                if begin < ends[tp]:
                    consumer.seek(tp, begin)
                    remaining.add(tp)
            while remaining:
                batches = await consumer.getmany(
                    *remaining, timeout_ms=1000, max_records=RESTORE_BATCH
                )
                for tp, records in batches.items():
                    target = self._maps[tp.partition]
                    end = ends[tp]
                    for record in records:
                        if record.offset >= end:
                            break
                        read += 1
                        if record.key is None:
                            continue
                        if record.value is None:
                            target.pop(record.key, None)
                        else:
                            target[record.key] = record.value
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                await asyncio.sleep(0)
            return read
        finally:
            await consumer.stop()
