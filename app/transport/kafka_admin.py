"""Kafka administration: create topics (and wait until the brokers serve them), consumer
lag, delete a consumer group or a topic. Connection failures become BrokerUnavailable with
the address, so commands can say what is wrong without a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from app.settings import Settings
from app.topic_catalog import TopicSpec
from app.transport.group_offsets import committed_offsets, offsets_partition
from app.transport.kafka import start_client, topic_partitions
from app.transport.kafka_security import connection_options

TOPIC_ALREADY_EXISTS = 36
DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs v1 config source: set on the topic itself
OFFSETS_TOPIC = "__consumer_offsets"
LEADERS_MAX_AGE_S = 60.0


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


async def align_managed_configs(
    settings: Settings, specs: Iterable[TopicSpec]
) -> list[tuple[str, str, str, str]]:
    """Set the configs a setting decides (`TopicSpec.managed`, e.g. the dead-letter topic's
    retention) on topics that exist with other values; return (topic, config, old, new)
    for each change. The topic's other own configs are kept (AlterConfigs replaces them
    all, so they are read first and sent back)."""
    wanted = [s for s in specs if s.managed]
    if not wanted:
        return []
    changes: list[tuple[str, str, str, str]] = []
    async with admin_client(settings) as admin:
        existing = set(await admin.list_topics())
        wanted = [s for s in wanted if s.name in existing]
        if not wanted:
            return []
        resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in wanted]
        answers = await admin.describe_configs(resources, include_synonyms=True)
        current: dict[str, dict[str, tuple[str, int]]] = {}
        for answer in answers:
            for _code, _msg, _type, name, entries in answer.resources:
                current[name] = {e[0]: (e[1], e[3]) for e in entries}
        for spec in wanted:
            have = current.get(spec.name, {})
            differ = [k for k in spec.managed if have.get(k, (None, 0))[0] != spec.config[k]]
            if not differ:
                continue
            own = {k: v for k, (v, source) in have.items() if source == DYNAMIC_TOPIC_CONFIG}
            own.update({k: spec.config[k] for k in spec.managed})
            response = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, spec.name, own)]
            )
            for answer in response:
                for code, message, *_ in answer.resources:
                    if code != 0:
                        raise RuntimeError(
                            f"could not set {', '.join(differ)} of topic {spec.name}: "
                            f"error {code} {message}"
                        )
            for k in differ:
                changes.append((spec.name, k, str(have.get(k, ("unset", 0))[0]), spec.config[k]))
    return changes


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
