"""`BatchWriter` partitioning: a keyed record goes to the partition the Java client's default
partitioner picks, `Utils.toPositive(Utils.murmur2(key)) % partitions`, so records written
by the router and by Java (or any Kafka-compatible) producers for the same key meet on the
same partition.

The partition is computed inside `BatchWriter.add` (the module exposes no smaller function),
so it is observed through a fake producer that records which (topic, partition) each batch
is sent to. Checked against: the Java client's murmur2 vectors (Kafka's
`UtilsTest.testMurmur2`), partitions from the Java partitioner quoted by aiokafka's and
kafka-python's tests, an independent transcription of the Java code, and aiokafka's own
`DefaultPartitioner` over random keys.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from app.transport.batch_producer import BatchWriter

# Kafka's clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java (testMurmur2):
# Utils.murmur2 returns a signed Java int.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# Partitions out of 1000 from Kafka's Java partitioner, as quoted in aiokafka's and
# kafka-python's tests (test_murmur2_java_compatibility).
JAVA_PARTITION_OF_1000 = {
    b"": 681,
    b"a": 524,
    b"ab": 434,
    b"abc": 107,
    b"123456789": 566,
    b"\x00 ": 742,
}


def to_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def java_murmur2(data: bytes) -> int:
    """org.apache.kafka.common.utils.Utils.murmur2, transcribed with Java int semantics
    (32-bit wrap-around, `>>>` as an unsigned shift, bytes as signed then `& 0xff`)."""
    length = len(data)
    seed = to_int32(0x9747B28C)
    m = 0x5BD1E995
    r = 24
    h = to_int32(seed ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = to_int32(data[i4] | data[i4 + 1] << 8 | data[i4 + 2] << 16 | data[i4 + 3] << 24)
        k = to_int32(k * m)
        k ^= (k & 0xFFFFFFFF) >> r
        k = to_int32(k * m)
        h = to_int32(h * m)
        h = to_int32(h ^ k)
    tail = length % 4
    base = length & ~3
    if tail == 3:
        h = to_int32(h ^ data[base + 2] << 16)
    if tail >= 2:
        h = to_int32(h ^ data[base + 1] << 8)
    if tail >= 1:
        h = to_int32(h ^ data[base])
        h = to_int32(h * m)
    h = to_int32(h ^ (h & 0xFFFFFFFF) >> 13)
    h = to_int32(h * m)
    h = to_int32(h ^ (h & 0xFFFFFFFF) >> 15)
    return h


def java_partition(java_hash: int, partitions: int) -> int:
    """DefaultPartitioner / BuiltInPartitioner: Utils.toPositive(hash) % numPartitions."""
    return (java_hash & 0x7FFFFFFF) % partitions


# -- a fake producer ---------------------------------------------------------------------


class FakeBatch:
    """Like aiokafka's BatchBuilder: `append` returns None once the batch is full."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: Any) -> object | None:
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    def __init__(self, partitions: dict[str, int], capacity: int = 1_000) -> None:
        self.partitions = partitions
        self.capacity = capacity
        self.asked: list[str] = []
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        self.asked.append(topic)
        return set(range(self.partitions[topic]))

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, list(batch.records)))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def placed(self) -> dict[bytes | None, set[tuple[str, int]]]:
        """Where each key went: the (topic, partition) of every batch holding it."""
        out: dict[bytes | None, set[tuple[str, int]]] = {}
        for topic, partition, records in self.sent:
            for key, _ in records:
                out.setdefault(key, set()).add((topic, partition))
        return out


def writer(producer: FakeProducer, known: dict[str, int] | None = None) -> BatchWriter:
    return BatchWriter(cast(AIOKafkaProducer, producer), {} if known is None else known)


async def partition_of(key: bytes, partitions: int) -> int:
    """The partition BatchWriter puts a record with `key` on, for a topic of `partitions`."""
    producer = FakeProducer({"t": partitions})
    out = writer(producer)
    await out.add("t", key, b"v")
    await out.flush()
    [(topic, partition, records)] = producer.sent
    assert (topic, records) == ("t", [(key, b"v")])
    return partition


# -- the hash itself ---------------------------------------------------------------------


@pytest.mark.parametrize(("key", "expected"), sorted(JAVA_MURMUR2.items()))
def test_murmur2_used_matches_the_java_client(key: bytes, expected: int) -> None:
    assert to_int32(murmur2(key)) == expected
    assert java_murmur2(key) == expected  # the transcription used below is right too


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=64))
def test_murmur2_used_matches_the_java_transcription(key: bytes) -> None:
    assert to_int32(murmur2(key)) == java_murmur2(key)


# -- the partition BatchWriter picks -----------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 2, 3, 6, 10, 12, 50, 1000])
@pytest.mark.parametrize(("key", "java_hash"), sorted(JAVA_MURMUR2.items()))
async def test_keyed_records_go_where_the_java_partitioner_puts_them(
    key: bytes, java_hash: int, partitions: int
) -> None:
    assert await partition_of(key, partitions) == java_partition(java_hash, partitions)


@pytest.mark.parametrize(("key", "expected"), sorted(JAVA_PARTITION_OF_1000.items()))
async def test_partitions_of_1000_quoted_from_the_java_client(key: bytes, expected: int) -> None:
    assert await partition_of(key, 1000) == expected


async def test_literal_partitions_for_foobar() -> None:
    # toPositive(-790332482) = 1357151166; % 10 = 6, % 50 = 16, % 12 = 6.
    assert await partition_of(b"foobar", 10) == 6
    assert await partition_of(b"foobar", 50) == 16
    assert await partition_of(b"foobar", 12) == 6


async def test_a_negative_hash_is_masked_positive_not_negated() -> None:
    """Java's toPositive is `hash & 0x7fffffff`; abs(hash) gives other partitions."""
    assert JAVA_MURMUR2[b"21"] < 0
    assert await partition_of(b"21", 12) == 0  # 1173551340 % 12
    assert abs(JAVA_MURMUR2[b"21"]) % 12 == 8  # what abs() would have picked


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=100), partitions=st.integers(1, 500))
async def test_random_keys_go_where_aiokafka_and_java_put_them(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    got = await partition_of(key, partitions)
    assert got == DefaultPartitioner()(key, every, every)
    assert got == java_partition(java_murmur2(key), partitions)
    assert 0 <= got < partitions


@settings(max_examples=100, deadline=None)
@given(
    keys=st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=40),
    partitions=st.integers(1, 16),
)
async def test_records_of_one_key_share_a_partition_and_keep_their_order(
    keys: list[bytes], partitions: int
) -> None:
    producer = FakeProducer({"t": partitions}, capacity=3)  # small batches: many rollovers
    out = writer(producer)
    for i, key in enumerate(keys):
        await out.add("t", key, str(i).encode())
    acks = await out.flush()
    assert len(acks) == len(producer.sent)
    placed = producer.placed()
    for key in set(keys):
        assert placed[key] == {("t", java_partition(java_murmur2(key), partitions))}
    for key in set(keys):
        sent = [v for _, _, recs in producer.sent for k, v in recs if k == key]
        expected = [str(i).encode() for i, k in enumerate(keys) if k == key]
        assert sent == expected


# -- partition counts, keyless and explicit partitions -----------------------------------


async def test_the_partition_count_is_asked_once_per_topic_and_remembered() -> None:
    producer = FakeProducer({"a": 7, "b": 3})
    known: dict[str, int] = {}
    out = writer(producer, known)
    for key in (b"k1", b"k2", b"k3"):
        await out.add("a", key, b"v")
        await out.add("b", key, b"v")
    await out.flush()
    assert producer.asked == ["a", "b"]
    assert known == {"a": 7, "b": 3}


async def test_a_known_partition_count_is_used_without_asking() -> None:
    producer = FakeProducer({"t": 1})  # the broker would say 1; the caller knows 12
    out = writer(producer, {"t": 12})
    await out.add("t", b"foobar", b"v")
    await out.flush()
    assert producer.asked == []
    assert [(t, p) for t, p, _ in producer.sent] == [("t", 6)]


async def test_the_same_key_on_another_topic_follows_that_topics_count() -> None:
    producer = FakeProducer({"wide": 50, "narrow": 10})
    out = writer(producer)
    await out.add("wide", b"foobar", b"v")
    await out.add("narrow", b"foobar", b"v")
    await out.flush()
    assert sorted((t, p) for t, p, _ in producer.sent) == [("narrow", 6), ("wide", 16)]


async def test_an_explicit_partition_wins_over_the_key() -> None:
    producer = FakeProducer({"t": 12})
    out = writer(producer)
    await out.add("t", b"foobar", b"v", partition=3)
    await out.flush()
    assert [(t, p) for t, p, _ in producer.sent] == [("t", 3)]
    assert producer.asked == []  # no need to know the count


async def test_keyless_records_share_one_partition_in_order() -> None:
    producer = FakeProducer({"t": 8}, capacity=2)
    out = writer(producer)
    for i in range(5):
        await out.add("t", None, str(i).encode())
    await out.flush()
    assert {p for _, p, _ in producer.sent} == {0}
    assert [v for _, _, recs in producer.sent for _, v in recs] == [b"0", b"1", b"2", b"3", b"4"]


async def test_a_record_too_large_for_an_empty_batch_is_refused() -> None:
    producer = FakeProducer({"t": 4}, capacity=0)
    out = writer(producer)
    with pytest.raises(ValueError, match="larger than the producer's batch size"):
        await out.add("t", b"k", b"v")
