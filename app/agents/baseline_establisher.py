"""Baselines of trigger-field jobs, established before the router routes a partition for
them (`app/domain/baselines.py` says what a baseline is; README "Field changes of existing
members" what it is for).

The first time the router routes an input partition for a job with trigger fields (a new
job, or its trigger fields changed), each member of the job's audiences without a baseline
gets one from their latest input record, read in one sequential pass over the partition up
to the first offset not yet routed; then a marker in the state changelog records that the
partition is done for that job and field list. Routing waits while it runs, and every
record is acknowledged by the broker before it goes on, so the first change routed after
the job exists is compared with an established baseline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from app.domain.baselines import (
    jobs_needing_baselines,
    marker_key,
    marker_value,
    members_without_baseline,
    with_baselines,
)
from app.domain.errors import InvalidRecord
from app.domain.jobs import JobConfig
from app.domain.record_routing import OutRecord
from app.domain.records import parse_record
from app.domain.routing import field_tag
from app.settings import Settings
from app.transport.kafka import iter_offsets
from app.transport.registry import ConfigRegistry
from app.transport.state_store import StateStore

log = logging.getLogger(__name__)

Write = Callable[[list[OutRecord]], Awaitable[list[asyncio.Future[Any]]]]


class BaselineEstablisher:
    """The router's baselines: `ensure(events)` before routing them."""

    def __init__(
        self,
        settings: Settings,
        registry: ConfigRegistry,
        store: StateStore,
        write: Write,
        forget_partitions: Callable[[], None],
    ) -> None:
        """`write` hands records to the router's producer (returning their ack futures);
        `forget_partitions` drops its cached partition counts after a failed write."""
        self.settings = settings
        self.registry = registry
        self.store = store
        self._write = write
        self._forget_partitions = forget_partitions
        self._established: set[tuple[int, str, str]] = set()  # (partition, job id, field tag)

    async def ensure(self, events: Sequence[Any]) -> None:
        """Before routing a partition for a job with trigger fields whose baselines are not
        established there (new job, or its trigger fields changed), establish them from each
        member's latest record, so the first change after the job exists is sent
        (`app/domain/baselines.py`)."""
        jobs = [j.config for j in self.registry.jobs.values()]
        jobs = [j for j in jobs if j.is_triggers and j.trigger_fields]
        if not jobs:
            return
        firsts: dict[int, int] = {}
        for message in events:
            firsts.setdefault(message.partition, message.offset)
        for partition, first in firsts.items():
            unknown = [
                j
                for j in jobs
                if (partition, j.id, field_tag(j.trigger_fields)) not in self._established
            ]
            if not unknown:
                continue
            data = self.store.partition(partition)
            needing = jobs_needing_baselines(unknown, data)
            if needing:
                await self._establish(partition, first, data, needing)
            for job in unknown:
                self._established.add((partition, job.id, field_tag(job.trigger_fields)))

    async def _establish(
        self, partition: int, before: int, data: dict[bytes, bytes], jobs: list[JobConfig]
    ) -> None:
        """Read the latest record of every member without a baseline (one sequential pass
        over the partition, up to `before`, the first offset not yet routed), store the
        fingerprints, then the markers; wait for the broker before routing on."""
        started = time.monotonic()
        wanted = {
            w.offset: w
            for w in members_without_baseline(data, partition, jobs)
            if w.offset < before
        }
        by_id = {job.id: job for job in jobs}
        changelog = self.store.changelog_topic
        acks: list[asyncio.Future[Any]] = []
        written: list[OutRecord] = []
        established = 0
        async for chunk in iter_offsets(
            self.settings, self.settings.input_topic, partition, set(wanted), timeout_s=3600
        ):
            records: list[OutRecord] = []
            for offset, raw in chunk:
                w = wanted[offset]
                try:
                    profile = parse_record(raw).data
                except InvalidRecord:
                    continue  # unreadable: its user's next record sets the baseline
                state = with_baselines(data.get(w.key), offset, partition, profile, by_id, w.jobs)
                if state is not None:
                    data[w.key] = state
                    records.append((changelog, w.key, state, partition))
                    established += 1
            written.extend(records)
            acks.extend(await self._write_until_sent(records))
        markers: list[OutRecord] = []
        for job in jobs:
            data[marker_key(job.id)] = marker_value(job)
            markers.append((changelog, marker_key(job.id), marker_value(job), partition))
        written.extend(markers)
        acks.extend(await self._write_until_sent(markers))
        try:
            await asyncio.gather(*acks)
        except Exception as exc:  # written again, in order, until the broker has them all
            log.error("writing baselines failed (%r); writing them again", exc)
            await self._write_until_sent(written, must_land=True)
        log.info(
            "baselines established for job(s) %s on input partition %d: %d of %d member(s) "
            "(the rest have no readable latest record: their next record sets it), %.1f s",
            [job.id for job in jobs],
            partition,
            established,
            len(wanted),
            time.monotonic() - started,
        )

    async def _write_until_sent(
        self, records: list[OutRecord], must_land: bool = False
    ) -> list[asyncio.Future[Any]]:
        """Hand `records` to the producer, retrying until it takes them (and, `must_land`,
        until the broker acknowledged them)."""
        while True:
            try:
                acks = await self._write(records)
                if must_land:
                    await asyncio.gather(*acks)
                return acks
            except Exception as exc:
                log.error("writing %d state record(s) failed (%r); retry in 1 s", len(records), exc)
                self._forget_partitions()
                await asyncio.sleep(1.0)
