"""Kafka administration: create topics (and wait until the brokers serve them), consumer
lag, delete a consumer group or a topic. Connection failures become BrokerUnavailable with
the address, so commands can say what is wrong without a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from app.settings import Settings
from app.topic_catalog import TopicSpec
from app.transport.kafka import start_client, topic_partitions
from app.transport.kafka_security import connection_options

TOPIC_ALREADY_EXISTS = 36
OFFSETS_TOPIC = "__consumer_offsets"
LEADERS_MAX_AGE_S = 60.0


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


@asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**connection_options(settings), request_timeout_ms=10000)
    await start_client(settings, admin)
    try:
        yield admin
    finally:
        await admin.close()


class SharedAdmin:
    """One admin client for many callers (every job's queue reads and writes its commit
    metadata through it), started on first use. A worker with hundreds of jobs would
    otherwise open, bootstrap (reading the metadata of every topic) and close an admin
    client per job at each assignment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        self._leaders: list[int] | None = None  # leader of each __consumer_offsets partition
        self._leaders_at = 0.0

    async def client(self) -> AIOKafkaAdminClient:
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    **connection_options(self.settings), request_timeout_ms=10000
                )
                await start_client(self.settings, admin)
                self._admin = admin
            return self._admin

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def coordinator(self, group: str) -> int | None:
        """The broker coordinating `group`, from the leaders of `__consumer_offsets` (read
        again after LEADERS_MAX_AGE_S); None when they cannot be read (e.g. no Describe
        permission on that topic): the caller then asks FindCoordinator, as it does when
        the guess is wrong (a leader moved). Saves a round trip per group: a worker
        starting 1 000 jobs made 1 000 lookups."""
        now = asyncio.get_running_loop().time()
        if self._leaders is None or now - self._leaders_at > LEADERS_MAX_AGE_S:
            self._leaders_at = now
            admin = await self.client()
            try:
                (topic,) = await admin.describe_topics([OFFSETS_TOPIC])
                parts = topic.get("partitions", []) if topic.get("error_code") == 0 else []
                leaders = {p["partition"]: p["leader"] for p in parts}
                ok = len(leaders) == len(parts) > 0 and min(leaders.values()) >= 0
                self._leaders = [leaders[i] for i in range(len(parts))] if ok else []
            except (KafkaError, KeyError, ValueError):
                self._leaders = []
        if not self._leaders:
            return None
        return self._leaders[offsets_partition(group, len(self._leaders))]


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec]) -> list[TopicSpec]:
    """Create the topics that do not exist yet; return those it created."""
    wanted = {s.name: s for s in specs}
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        missing = [s for name, s in wanted.items() if name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=settings.topic_replication,
                    topic_configs=s.broker_config(),
                )
                for s in missing
            ]
        )
        created = []
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(wanted[name])
            elif code != TOPIC_ALREADY_EXISTS:
                message = rest[0] if rest else ""
                raise RuntimeError(f"could not create topic {name}: error {code} {message}")
        await _wait_until_served(admin, {s.name: s.partitions for s in missing})
        return created


async def _wait_until_served(
    admin: AIOKafkaAdminClient, partitions: dict[str, int], timeout_s: float = 30.0
) -> None:
    """Return once the metadata shows every topic with all its partitions led.

    Creation is acknowledged before the metadata is: a consumer group that joins in between
    ignores the topic as missing and does not consume it until its next metadata refresh
    (minutes), which a fresh broker made easy to hit.
    """
    deadline = asyncio.get_running_loop().time() + timeout_s
    pending = dict(partitions)
    while pending and asyncio.get_running_loop().time() < deadline:
        for topic in await admin.describe_topics(list(pending)):
            led = [p for p in topic.get("partitions", []) if p.get("leader", -1) >= 0]
            if topic.get("error_code") == 0 and len(led) >= pending.get(topic["topic"], 0):
                pending.pop(topic["topic"], None)
        if pending:
            await asyncio.sleep(0.2)
    if pending:
        raise RuntimeError(
            f"topics not served by the broker after {timeout_s:.0f} s: {sorted(pending)}"
        )


async def consumer_lag(settings: Settings, topic: str, group: str) -> int | None:
    """Records of `topic` that `group` has not committed past (None when unknown)."""
    return (await consumer_lags(settings, [(topic, group)]))[0]


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


async def consumer_lags(settings: Settings, pairs: Sequence[tuple[str, str]]) -> list[int | None]:
    """`consumer_lag` of each (topic, group), with one admin client and one consumer for
    all of them (the API lists every job's backlog every few seconds)."""
    if not pairs:
        return []
    try:
        async with admin_client(settings) as admin:
            committed = await asyncio.gather(
                *(committed_offsets(admin, group) for _topic, group in pairs),
                return_exceptions=True,
            )
        consumer = AIOKafkaConsumer(**connection_options(settings))
        await consumer.start()
        try:
            by_topic = {}
            for topic in {t for t, _g in pairs}:
                by_topic[topic] = await topic_partitions(consumer, topic)
            every = [tp for tps in by_topic.values() for tp in tps]
            ends = await consumer.end_offsets(every) if every else {}
        finally:
            await consumer.stop()
    except (KafkaError, OSError):
        return [None] * len(pairs)
    out: list[int | None] = []
    for (topic, _group), offsets in zip(pairs, committed, strict=True):
        if isinstance(offsets, BaseException):
            out.append(None)
            continue
        lag = 0
        for tp in by_topic[topic]:
            meta = offsets.get(tp)
            lag += ends[tp] - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        out.append(lag)
    return out


GROUP_ID_NOT_FOUND = 69
NON_EMPTY_GROUP = 68
UNKNOWN_TOPIC_OR_PARTITION = 3


async def delete_consumer_group(settings: Settings, group: str, timeout_s: float = 30.0) -> bool:
    """Delete a consumer group (its committed offsets); False if it did not exist.

    aiokafka 0.14's admin client has no `delete_consumer_groups`: this sends DeleteGroups to
    the group's coordinator. A group that still has members is retried until `timeout_s`
    (members leave when their consumer stops), then RuntimeError."""
    from aiokafka.protocol.admin import DeleteGroupsRequest

    deadline = asyncio.get_running_loop().time() + timeout_s
    async with admin_client(settings) as admin:
        while True:
            coordinator = await admin.find_coordinator(group)
            response = await admin._send_request(DeleteGroupsRequest([group]), coordinator)
            code = dict(response.results).get(group, 0)
            if code == 0:
                return True
            if code == GROUP_ID_NOT_FOUND:
                return False
            if asyncio.get_running_loop().time() >= deadline:
                what = "it still has members" if code == NON_EMPTY_GROUP else f"error {code}"
                raise RuntimeError(f"could not delete consumer group {group}: {what}")
            await asyncio.sleep(0.5)


async def delete_topic(settings: Settings, topic: str) -> bool:
    """Delete a topic; False if it did not exist."""
    async with admin_client(settings) as admin:
        response = await admin.delete_topics([topic])
        for name, code, *_ in response.topic_error_codes:
            if name != topic:
                continue
            if code == UNKNOWN_TOPIC_OR_PARTITION:
                return False
            if code != 0:
                raise RuntimeError(f"could not delete topic {topic}: error {code}")
        return True


async def consumer_group_exists(settings: Settings, group: str) -> bool:
    async with admin_client(settings) as admin:
        return group in {g[0] for g in await admin.list_consumer_groups()}


class CommitRefused(RuntimeError):
    """The broker refused a commit into a group (with Kafka's error code)."""

    def __init__(self, group: str, code: int) -> None:
        super().__init__(f"commit into group {group} refused: error {code}")
        self.code = code


# A commit without membership is refused while the group has members (an older version's
# per-job consumers): UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION.
GROUP_HAS_MEMBERS = {22, 25}


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
