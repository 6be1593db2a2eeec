"""Cheap bulk produce: records grouped per (topic, partition) into aiokafka batches.

`AIOKafkaProducer.send` costs a future, a task switch and accumulator work per record; the
router writes two records per input event, so per-record cost decides its throughput.
Batches keep order within a partition (one builder per partition, submitted in order), and
partitions follow Kafka's default partitioner (murmur2 of the key), like the Java client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from app.transport.kafka import key_partition


class BatchWriter:
    """Collects records, submits full batches as it goes; `flush()` returns all ack futures."""

    def __init__(self, producer: AIOKafkaProducer, partitions: dict[str, int]) -> None:
        self._producer = producer
        self._partitions = partitions
        self._builders: dict[tuple[str, int], Any] = {}
        self._acks: list[asyncio.Future[Any]] = []

    async def learn_partitions(self, topics: Iterable[str]) -> None:
        """Look up the partition counts of the topics not known yet, side by side, so they
        share a metadata round trip. One by one, a router's first batch for 300 new job
        queues made 300 trips, each reading the metadata of every topic asked so far."""
        unknown = sorted({t for t in topics if t not in self._partitions})
        if unknown:
            found = await asyncio.gather(*(self._producer.partitions_for(t) for t in unknown))
            for topic, partitions in zip(unknown, found, strict=True):
                self._partitions[topic] = len(partitions)

    async def add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        if partition is None:
            count = self._partitions.get(topic)
            if count is None:
                count = len(await self._producer.partitions_for(topic))
                self._partitions[topic] = count
            partition = key_partition(key, count) if key is not None else 0
        slot = (topic, partition)
        builder = self._builders.get(slot)
        if builder is None:
            builder = self._builders[slot] = self._producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            self._acks.append(await self._producer.send_batch(builder, topic, partition=partition))
            builder = self._builders[slot] = self._producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"record for {topic} is larger than the producer's batch size")

    async def flush(self) -> list[asyncio.Future[Any]]:
        for (topic, partition), builder in self._builders.items():
            if builder.record_count():
                self._acks.append(
                    await self._producer.send_batch(builder, topic, partition=partition)
                )
        self._builders.clear()
        acks, self._acks = self._acks, []
        return acks
