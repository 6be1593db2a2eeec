"""The router's per-user state, one map per input partition, backed by a compacted changelog.

The changelog (`<app id>-user-state-changelog`) is co-partitioned with the input topic: the
state of a user whose records arrive on input partition p lives on changelog partition p.
The router writes every state change to it and waits for the broker's ack before it commits
the input offset that caused the change, so the changelog is never behind a committed input
offset. A partition's map is rebuilt from its changelog when the partition is assigned.

A partition given up in a rebalance keeps its map together with the changelog's end offset
at that moment; if the partition comes back (the usual case in an eager rebalance), only
what other workers wrote since is read, not the whole partition.

At a clean stop each partition's map is written to a local snapshot with that end offset
(`domain/state_snapshot.py`, under `<data dir>/state-snapshots/`); a worker that starts
with a usable snapshot loads it and reads only the changelog written since. Snapshots that
cannot be used (too old, damaged) and those of partitions the worker no longer serves are
removed: they may hold users erased since (README, "Deleting users").
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.domain.state_snapshot import Snapshot, SnapshotUnusable, decode, encode
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
        self.snapshot_dir = settings.data_dir / "state-snapshots" / changelog_topic

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
        from_snapshots: list[int] = []
        for p in wanted:
            kept = self._released_maps.pop(p, None)
            if kept is not None and p in self._released_at:
                self._maps[p] = kept
                starts[p] = self._released_at.pop(p)
            else:
                self._released_at.pop(p, None)
                snapshot = await asyncio.to_thread(self._load_snapshot, p)
                self._maps[p] = snapshot.entries if snapshot else {}
                starts[p] = snapshot.offset if snapshot else None  # None: from the beginning
                if snapshot is not None:
                    from_snapshots.append(p)
        read = await self._restore(starts)
        log.info(
            "state restored for partition(s) %s: %d changelog record(s) read, %d entries, %.1f s%s",
            wanted,
            read,
            sum(len(self._maps[p]) for p in wanted),
            time.monotonic() - started,
            f" (local snapshots of {from_snapshots})" if from_snapshots else "",
        )

    def _snapshot_path(self, partition: int) -> Path:
        return self.snapshot_dir / f"{partition}.snapshot"

    def _load_snapshot(self, partition: int) -> Snapshot | None:
        path = self._snapshot_path(partition)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("state snapshot %s not readable (%s); reading the changelog", path, exc)
            return None
        try:
            return decode(data, self.changelog_topic, partition, time.time())
        except SnapshotUnusable as exc:
            log.warning("state snapshot %s not used: %s; reading the changelog", path, exc)
            _remove(path)  # never usable again; it may hold users erased since
            return None

    async def save_snapshots(self) -> None:
        """Write each assigned partition's map with the changelog's end offset. Call it only
        when every state change is acknowledged by the changelog (the router drained)."""
        parts = sorted(self._maps)
        if not parts:
            return
        started = time.monotonic()
        ends = await self._end_offsets(parts)
        written = 0
        for p in parts:
            data = encode(self.changelog_topic, p, ends[p], self._maps[p], time.time())
            try:
                await asyncio.to_thread(_write_atomically, self._snapshot_path(p), data)
                written += len(self._maps[p])
            except OSError as exc:
                log.warning("state snapshot of partition %d not written: %s", p, exc)
        stale = await asyncio.to_thread(self._remove_other_snapshots, set(parts))
        log.info(
            "state snapshots written for partition(s) %s: %d entries, %.1f s%s",
            parts,
            written,
            time.monotonic() - started,
            f" (stale snapshots of {stale} removed)" if stale else "",
        )

    def _remove_other_snapshots(self, kept: set[int]) -> list[int]:
        """Remove the snapshots of partitions this worker no longer serves: they are older
        than the state others keep now, and may still hold users erased since."""
        removed = []
        for path in self.snapshot_dir.glob("*.snapshot"):
            if path.stem.isdigit() and int(path.stem) not in kept:
                _remove(path)
                removed.append(int(path.stem))
        return sorted(removed)

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
                if start is not None and start > ends[tp]:
                    # The changelog is shorter than the map claims (topic re-created?).
                    log.warning(
                        "state of partition %d was at changelog offset %d, beyond its end %d: "
                        "reading the changelog from its beginning",
                        p,
                        start,
                        ends[tp],
                    )
                    self._maps[p] = {}
                    start = None
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


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("state snapshot %s not removed: %s", path, exc)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
