"""A consumer group's offsets and members, read and written without being a member: the
committed offsets (retried while the broker has no coordinator yet), a member-less commit
(what the delivery holder does for each job's group), the member count, and which broker
coordinates a group (Kafka's hash of the group id over `__consumer_offsets`).
"""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata


def java_string_hash(text: str) -> int:
    """Java's `String.hashCode()` (over UTF-16 code units, 32-bit overflow)."""
    units = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group: str, partitions: int) -> int:
    """The `__consumer_offsets` partition that holds `group` (its leader coordinates the
    group): Kafka's `Utils.abs(groupId.hashCode()) % partitions`."""
    h = java_string_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


# How long a group's committed offsets are asked for again while the broker says "not yet"
# (a retriable error: on a fresh cluster the offsets topic is created by the first group
# lookup, and for a moment there is no coordinator; `jobs show` and the API then said
# "backlog unknown" for a job that had none).
COMMITTED_RETRY_S = 10.0


async def committed_offsets(
    admin: AIOKafkaAdminClient,
    group: str,
    partitions: list[TopicPartition] | None = None,
    retry_s: float = COMMITTED_RETRY_S,
    coordinator: int | None = None,
) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's committed offsets (of `partitions`, or all); retriable errors (no
    coordinator yet, coordinator loading or moved) are retried with a growing pause for
    up to `retry_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_s
    pause = 0.05
    while True:
        try:
            offsets: dict[TopicPartition, OffsetAndMetadata]
            offsets = await admin.list_consumer_group_offsets(
                group, group_coordinator_id=coordinator, partitions=partitions
            )
            return offsets
        except KafkaError as exc:
            if not exc.retriable or loop.time() + pause > deadline:
                raise
            coordinator = None  # ask FindCoordinator from now on
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)


class CommitRefused(RuntimeError):
    """The broker refused a commit into a group (with Kafka's error code)."""

    def __init__(self, group: str, code: int) -> None:
        super().__init__(f"commit into group {group} refused: error {code}")
        self.code = code


async def commit_group_offsets(
    admin: AIOKafkaAdminClient, group: str, offsets: dict[TopicPartition, tuple[int, str]]
) -> None:
    """Commit `offsets` (offset, metadata) into `group` without being a member of it: a
    "simple" commit (generation -1), as Kafka's admin `alterConsumerGroupOffsets` does. The
    broker accepts it while the group has no members. Raises CommitRefused, or a retriable
    KafkaError when the coordinator moved."""
    from aiokafka.errors import for_code
    from aiokafka.protocol.commit import OffsetCommitRequest

    by_topic: dict[str, list[tuple[int, int, str]]] = {}
    for tp, (offset, metadata) in sorted(offsets.items()):
        by_topic.setdefault(tp.topic, []).append((tp.partition, offset, metadata))
    request = OffsetCommitRequest(group, -1, "", -1, sorted(by_topic.items()))
    coordinator = await admin.find_coordinator(group)
    response = await admin._send_request(request, coordinator)
    for _topic, partitions in response.topics:
        for _partition, code in partitions:
            if code == 0:
                continue
            error = for_code(code)
            if error.retriable:
                raise error(f"commit into group {group}")
            raise CommitRefused(group, code)


NOT_COORDINATOR = 16


async def group_member_count(
    admin: AIOKafkaAdminClient, group: str, coordinator: int | None = None
) -> int:
    """How many members a consumer group has now (0 when it does not exist). With a guessed
    `coordinator` that is not the group's, FindCoordinator is asked after all."""
    responses = await admin.describe_consumer_groups([group], group_coordinator_id=coordinator)
    found = [g for r in responses for g in r.groups if g[1] == group]
    if coordinator is not None and any(g[0] == NOT_COORDINATOR for g in found):
        return await group_member_count(admin, group)
    return sum(len(g[5]) for g in found)
