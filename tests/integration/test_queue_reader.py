"""The shared queue reader against a real broker: one consumer for every job's queue.

- every record of every queue is handed on once, in offset order, while queues are added
  and removed under it (each change replaces the consumer's assignment);
- a paused queue is not read and keeps its position; the others read on;
- records are handed on from the position each queue asks for.
"""

from __future__ import annotations

import functools
import operator
import uuid
from typing import Any

from aiokafka import TopicPartition

from app.settings import Settings
from app.topic_catalog import TopicSpec
from app.transport.kafka_admin import ensure_topics
from app.transport.queue_reader import QueueReader
from tests.support.kafka_io import produce
from tests.support.polling import eventually


class FakeQueue:
    """A job's queue as the reader sees it: records taken, in order."""

    def __init__(self, topic: str, start: int = 0) -> None:
        self.topic = topic
        self.partitions = [TopicPartition(topic, 0)]
        self.paused = False
        self.next = start
        self.taken: list[int] = []

    def position(self, tp: TopicPartition) -> int:
        return self.next

    def take(self, tp: TopicPartition, records: list[Any]) -> None:
        for msg in records:
            if msg.offset >= self.next:  # as JobQueue: an offset below the next is old
                self.taken.append(msg.offset)
                self.next = msg.offset + 1


async def _topics(settings: Settings, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    names = [f"reader-{tag}-{i}" for i in range(count)]
    await ensure_topics(settings, [TopicSpec(n, 1, "delete") for n in names])
    return names


async def _fill(settings: Settings, topic: str, first: int, count: int) -> None:
    await produce(settings, topic, [(b"k", f"{first + i}".encode()) for i in range(count)])


async def test_every_record_is_handed_on_once_in_order_while_queues_come_and_go(
    test_settings: Settings,
) -> None:
    names = await _topics(test_settings, 4)
    reader = QueueReader(test_settings)
    await reader.start()
    try:
        queues = [FakeQueue(n) for n in names]
        reader.add(queues[0])
        reader.add(queues[1])
        for n in names:
            await _fill(test_settings, n, 0, 300)
        await eventually(
            lambda: [len(q.taken) for q in queues[:2]],
            lambda got: got == [300, 300],
            wait_s=20,
            what="the first two queues read to their end",
        )
        # A queue added later starts where it asks to (here: offset 100), and adding and
        # removing queues while records flow loses or repeats nothing for the others.
        queues[2].next = 100
        reader.add(queues[2])
        for round_ in range(5):
            await _fill(test_settings, names[0], 300 + 40 * round_, 40)
            before = reader.reassignments
            if round_ % 2 == 0:
                reader.add(queues[3])
            else:
                reader.remove(queues[3])
            await eventually(
                lambda: reader.reassignments,
                functools.partial(operator.lt, before),
                wait_s=5,
                what="re-assigned",
            )
        await eventually(
            lambda: (len(queues[0].taken), len(queues[2].taken)),
            lambda got: got == (500, 200),
            wait_s=20,
            what="every record once",
        )
        assert queues[0].taken == list(range(500))
        assert queues[1].taken == list(range(300))
        assert queues[2].taken == list(range(100, 300))
        assert queues[3].taken == sorted(set(queues[3].taken)), "no record twice"
        assert reader.reassignments >= 6
    finally:
        await reader.stop()


async def test_a_paused_queue_keeps_its_position_and_the_others_read_on(
    test_settings: Settings,
) -> None:
    slow_topic, fast_topic = await _topics(test_settings, 2)
    reader = QueueReader(test_settings)
    await reader.start()
    try:
        slow, fast = FakeQueue(slow_topic), FakeQueue(fast_topic)
        reader.add(slow)
        reader.add(fast)
        await _fill(test_settings, slow_topic, 0, 10)
        await eventually(lambda: len(slow.taken), lambda n: n == 10, wait_s=20, what="10 read")
        slow.paused = True
        reader.pause(slow)
        await _fill(test_settings, slow_topic, 10, 50)
        await _fill(test_settings, fast_topic, 0, 50)
        await eventually(lambda: len(fast.taken), lambda n: n == 50, wait_s=20, what="fast read")
        # A change of assignment while paused keeps the pause (and the position).
        other = FakeQueue((await _topics(test_settings, 1))[0])
        reader.add(other)
        await _fill(test_settings, fast_topic, 50, 10)
        await eventually(lambda: len(fast.taken), lambda n: n == 60, wait_s=20, what="fast read")
        assert slow.taken == list(range(10)), "a paused queue is not read"
        slow.paused = False
        reader.resume(slow)
        await eventually(lambda: len(slow.taken), lambda n: n == 60, wait_s=20, what="resumed")
        assert slow.taken == list(range(60))
    finally:
        await reader.stop()


async def test_the_fetch_wait_follows_what_the_reader_is_doing(
    test_settings: Settings, monkeypatch: Any
) -> None:
    """Once nothing happened for IDLE_AFTER_S the long poll is IDLE_FETCH_WAIT_MS; adding a
    queue makes it ADDING_FETCH_WAIT_MS for ADDING_S (the added queue's records are read),
    then QUEUE_FETCH_WAIT_MS; aiokafka's fetcher is given each."""
    import app.transport.queue_reader as queue_reader

    def fetcher_wait() -> int:
        assert reader._consumer is not None
        wait: int = reader._consumer._fetcher._fetch_max_wait_ms
        return wait

    monkeypatch.setattr(queue_reader, "IDLE_AFTER_S", 0.5)
    monkeypatch.setattr(queue_reader, "ADDING_S", 0.2)
    names = await _topics(test_settings, 2)
    reader = QueueReader(test_settings)
    await reader.start()
    try:
        first = FakeQueue(names[0])
        reader.add(first)
        await _fill(test_settings, names[0], 0, 5)
        await eventually(lambda: len(first.taken), lambda n: n == 5, wait_s=20, what="read")
        await eventually(
            fetcher_wait,
            lambda wait: wait == queue_reader.IDLE_FETCH_WAIT_MS,
            wait_s=20,
            what="the idle wait",
        )
        monkeypatch.setattr(queue_reader, "IDLE_AFTER_S", 60.0)  # no idling again meanwhile
        monkeypatch.setattr(queue_reader, "ADDING_S", 60.0)
        second = FakeQueue(names[1])
        await _fill(test_settings, names[1], 0, 3)
        reader.add(second)
        await eventually(lambda: second.taken, lambda got: got == [0, 1, 2], wait_s=20, what="new")
        assert fetcher_wait() == queue_reader.ADDING_FETCH_WAIT_MS
        monkeypatch.setattr(queue_reader, "ADDING_S", 0.2)
        await eventually(
            fetcher_wait,
            lambda wait: wait == queue_reader.QUEUE_FETCH_WAIT_MS,
            wait_s=20,
            what="the usual wait once the queues are added",
        )
        assert reader.fetch_wait_ms == queue_reader.QUEUE_FETCH_WAIT_MS
    finally:
        await reader.stop()
