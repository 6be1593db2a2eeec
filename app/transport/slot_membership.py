"""This worker process's membership of the delivery-slots group: which slots it holds.

One consumer group (`delivery_slots_group`) for all jobs: its members are the worker
processes, and what is shared out is not partitions but the `SLOTS` delivery slots
(`app/domain/slots.py`), carried in the assignment's user data. The consumer subscribes to
the jobs topic only because a classic group needs a subscription; it is given no partitions
and fetches nothing. Adding or removing a job changes nothing here: only processes joining
or leaving do.

aiokafka speaks the classic, eager protocol: at every rebalance each member is told that
everything is revoked. That is ignored here: a member keeps delivering what it holds and says
so in its join metadata; `plan_slots` never gives a held slot to someone else. When a slot is
taken away, `on_change` hands its jobs over first, then this member stops holding it and asks
for another round, in which the slot goes to its new holder.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from app.domain.slots import SLOTS, missing_siblings, plan_slots, plan_with_absent
from app.settings import Settings
from app.topic_catalog import delivery_slots_group
from app.transport.kafka import cancel_and_wait, group_timeouts, start_client
from app.transport.kafka_security import connection_options

log = logging.getLogger(__name__)

# A member hears of a rebalance on its next heartbeat, and moving a slot takes two rounds
# (the holder is told to release it, then the new holder is given it): with the default
# heartbeat (a quarter of the session, 2.5 s) a process joining took 5-6 s to get its first
# jobs. The group has one member per worker process, so a short beat costs nothing per job.
SLOTS_HEARTBEAT_MS = 500

# (taken, released): the slots this member gains, and those it must hand over (awaited
# before they are given up).
OnChange = Callable[[set[int], set[int]], Awaitable[None]]


def _read_user_data(data: bytes | None) -> tuple[frozenset[int], tuple[str, int, float] | None]:
    """A member's user data: the slots it holds, then an object with (worker, processes its
    worker runs, seconds since this process started); a reader that knows only slots skips
    the object. Anything unreadable is no slots, or no member info."""
    try:
        value = orjson.loads(data or b"[]")
    except orjson.JSONDecodeError:
        return frozenset(), None
    if not isinstance(value, list):
        return frozenset(), None
    slots = frozenset(s for s in value if isinstance(s, int) and 0 <= s < SLOTS)
    info = next((v for v in value if isinstance(v, dict)), None)
    if info is None:
        return slots, None
    worker, processes, age = info.get("worker"), info.get("processes"), info.get("age_s")
    if not (
        isinstance(worker, str)
        and isinstance(processes, int)
        and 1 <= processes <= 256
        and isinstance(age, int | float)
    ):
        return slots, None
    return slots, (worker, processes, float(age))


def _slots_from(data: bytes | None) -> frozenset[int]:
    return _read_user_data(data)[0]


def _member_from(data: bytes | None) -> tuple[str, int, float] | None:
    return _read_user_data(data)[1]


class SlotAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """Run by the group's leader: `plan_slots` over what every member reports holding.
    While a worker's processes are starting (`missing_siblings`), the shares of those not
    joined yet stay free for them (`plan_with_absent`), and `on_recheck(seconds)` asks for
    another round when the wait is over."""

    name = "aw-delivery-slots"
    version = 0

    def __init__(
        self,
        held: Callable[[], frozenset[int]],
        on_slots: Callable[[set[int]], None],
        member: Callable[[], dict[str, object]] | None = None,
        on_recheck: Callable[[float], None] | None = None,
    ):
        self._held = held
        self._on_slots = on_slots
        self._member = member
        self._on_recheck = on_recheck

    def assign(  # type: ignore[override]
        self,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        read = {m: _read_user_data(meta.user_data) for m, meta in members.items()}
        held = {m: slots for m, (slots, _info) in read.items()}
        infos = {m: info for m, (_slots, info) in read.items() if info is not None}
        missing, wait_s = missing_siblings(infos)
        if missing:
            plan = plan_with_absent(held, missing)
            log.info(
                "delivery slots: %d process(es) of a starting worker not joined yet; "
                "their share waits for them up to %.1f s",
                missing,
                wait_s,
            )
            if self._on_recheck is not None:
                self._on_recheck(wait_s)
        else:
            plan = plan_slots(held)
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version, [], orjson.dumps(sorted(plan.get(member, ())))
            )
            for member in members
        }

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        about: list[object] = [*sorted(self._held())]
        if self._member is not None:
            about.append(self._member())
        return ConsumerProtocolMemberMetadata(self.version, list(topics), orjson.dumps(about))

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        self._on_slots(set(_slots_from(assignment.user_data)))


class SlotMembership:
    """Holds this process's slots and reports each change to `on_change`, one at a time."""

    def __init__(self, settings: Settings, on_change: OnChange) -> None:
        self.settings = settings
        self.held: frozenset[int] = frozenset()
        self.ready = asyncio.Event()  # set after the first assignment
        self.rebalances = 0
        self._on_change = on_change
        self._wanted: set[int] | None = None
        self._changed = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()
        self._recheck: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            group_id=delivery_slots_group(self.settings),
            enable_auto_commit=False,
            partition_assignment_strategy=(
                SlotAssignor(lambda: self.held, self._assigned, self._about, self._recheck_later),
            ),
            metadata_max_age_ms=300000,
            **(group_timeouts(self.settings) | {"heartbeat_interval_ms": SLOTS_HEARTBEAT_MS}),
        )
        await start_client(self.settings, self._consumer)
        self._consumer.subscribe([self.settings.jobs_topic], listener=_IgnoreRevoke())
        self._tasks = [
            asyncio.create_task(self._poll(), name="delivery-slots-poll"),
            asyncio.create_task(self._apply(), name="delivery-slots-apply"),
        ]

    def _about(self) -> dict[str, object]:
        """What the leader learns of this process besides its slots (`missing_siblings`)."""
        settings = self.settings
        worker = settings.worker_id
        if settings.siblings > 1:  # `webhooks worker` named its processes <worker id>-<i>
            worker = worker.rsplit("-", 1)[0]
        return {
            "worker": worker,
            "processes": settings.siblings,
            "age_s": round(time.monotonic() - self._started, 3),
        }

    def _recheck_later(self, wait_s: float) -> None:
        """Another round once a starting worker's wait for its processes is over (if they
        joined meanwhile, that round just changes nothing)."""
        if self._recheck is not None:
            self._recheck.cancel()
        self._recheck = asyncio.get_running_loop().call_later(wait_s + 0.1, self._rejoin)

    def _rejoin(self) -> None:
        self._recheck = None
        if self._consumer is not None:
            self._consumer._coordinator.request_rejoin()

    async def stop(self) -> None:
        """Leave the group (call after this process's jobs were stopped and committed)."""
        if self._recheck is not None:
            self._recheck.cancel()
        for task in self._tasks:
            await cancel_and_wait(task)
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def _assigned(self, slots: set[int]) -> None:
        self._wanted = slots
        self.rebalances += 1
        self._changed.set()

    async def _poll(self) -> None:
        """The member is given no partitions, but aiokafka leaves the group when the consumer
        is not polled within max.poll.interval.ms."""
        consumer = self._consumer
        assert consumer is not None
        while True:
            await consumer.getmany(timeout_ms=1000)

    async def _apply(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = self._wanted
            if wanted is None:
                continue
            taken = wanted - self.held
            released = set(self.held - wanted)
            if taken or released:
                log.info(
                    "delivery slots: +%s -%s (holding %d)",
                    sorted(taken),
                    sorted(released),
                    len(self.held | taken) - len(released),
                )
            # Taken slots count as held at once, released ones only once handed over: a
            # rebalance meanwhile must not give either to another member.
            self.held = self.held | taken
            try:
                await self._on_change(taken, released)
            except Exception:
                log.exception("delivery slots: applying a change failed")
            self.held = self.held - released
            self.ready.set()
            if released and self._consumer is not None:
                # Released slots are free only once the leader hears we gave them up.
                self._consumer._coordinator.request_rejoin()


class _IgnoreRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """An eager rebalance revokes everything; a held slot is kept until reassigned."""

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None
