"""A partition assignor that makes a job's `worker_count` a bound across all its workers.

Every worker runs a consumer in the job's delivery group. Without coordination each worker
would take a share of `worker_count` of at least one, so three workers and `worker_count` 2
made three requests at once. This assignor, run by the group's leader, gives the queue's
partitions to at most `worker_count` members (round robin, so no partition is left without
an owner), and splits `worker_count` between those members — each gets at least one, and
the shares add up to exactly `worker_count`. Each member learns its share from its
assignment's user data (`on_assignment`). Combined with delivery finishing in-flight
requests before it gives partitions up, the job never has more than `worker_count` requests
in flight across the group.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

log = logging.getLogger(__name__)


def plan_shares(members: list[str], partitions: int, worker_count: int) -> dict[str, int]:
    """Which members get partitions and how much of `worker_count` each may use (pure)."""
    active = sorted(members)[: max(0, min(len(members), worker_count, partitions))]
    shares = {m: 0 for m in members}
    if not active:
        return shares
    base, extra = divmod(worker_count, len(active))
    for i, member in enumerate(active):
        shares[member] = base + (1 if i < extra else 0)
    return shares


class WorkerCountAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    name = "aw-worker-count"
    version = 0

    def __init__(self, worker_count: int, on_share: Callable[[int], None]) -> None:
        self.worker_count = worker_count
        self._on_share = on_share

    def assign(  # type: ignore[override]
        self,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for m in members.values() for t in m.subscription})
        partitions = [
            (topic, p)
            for topic in topics
            for p in sorted(cluster.partitions_for_topic(topic) or ())
        ]
        shares = plan_shares(list(members), len(partitions), self.worker_count)
        active = [m for m in sorted(members) if shares[m] > 0]
        owned: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, (topic, p) in enumerate(partitions):
            if active:
                owned[active[i % len(active)]][topic].append(p)
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version, sorted(owned[member].items()), str(shares[member]).encode()
            )
            for member in members
        }

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        return ConsumerProtocolMemberMetadata(self.version, list(topics), b"")

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        try:
            share = int(assignment.user_data or b"0")
        except ValueError:
            share = 0
        self._on_share(max(0, min(share, self.worker_count)))
