"""Hostile input records on the real broker (issue 9, items 3 and 4): records nested past
orjson's dump limit, a 5 MiB non-JSON record, a 400 KB id with an 800 KB profile, a user
entering 15 000 audiences at once. Each becomes one dead letter with its reason; the valid
records around them are delivered; the router's commit reaches the end; the worker stops
within its grace period.

On 3c5538c the fourth deeply nested record deadlocked the router and oversize output made
it retry `MessageSizeTooLargeError` forever."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from app.topic_catalog import TopicSpec
from app.transport.input_consumer import router_group
from app.transport.kafka_admin import ensure_topics
from tests.support.jobs import apply_jobs, triggers_job, wait_for_requests
from tests.support.kafka_io import wait_for_commits_at_end, wait_for_dead_letters
from tests.support.processes import WorkerProcess

BIG = 8 * 1024 * 1024


def deep(depth: int, user: str) -> bytes:
    inner = '{"x":' * depth + '"leaf"' + "}" * depth
    return (
        f'{{"id":"{user}","data":{{"deep":{inner}}},"segment_events":'
        '[{"id":"s","slug":"newsletter","event":"enter"}]}'
    ).encode()


def valid(user: str, n: int) -> bytes:
    return orjson.dumps(
        {"id": user, "data": {"n": n}, "segment_events": [{"slug": "newsletter", "event": "enter"}]}
    )


def hostile() -> list[tuple[str, bytes]]:
    many = [{"id": f"s{n}", "slug": f"a{n}", "event": "enter"} for n in range(15_000)]
    many.append({"id": "s", "slug": "newsletter", "event": "enter"})
    return [
        ("deep-300", deep(300, "d1")),
        ("deep-600", deep(600, "d2")),
        ("deep-1000", deep(1000, "d3")),
        ("deep-1020", deep(1020, "d4")),
        ("deep-255", deep(255, "d5")),
        ("five-mib", b"\xfe" * (5 * 1024 * 1024)),
        (
            "big-id",
            orjson.dumps(
                {
                    "id": "i" * 400_000,
                    "data": {"blob": "p" * 800_000},
                    "segment_events": [{"slug": "newsletter", "event": "enter"}],
                }
            ),
        ),
        (
            "long-id",
            orjson.dumps(
                {
                    "id": "i" * 400_000,
                    "data": {"blob": "p" * 100_000},
                    "segment_events": [{"slug": "newsletter", "event": "enter"}],
                }
            ),
        ),
        ("audiences", orjson.dumps({"id": "many", "data": {}, "segment_events": many})),
    ]


async def produce_big(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    prod = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=BIG
    )
    await prod.start()
    try:
        for key, value in records:
            await prod.send_and_wait(settings.input_topic, value, key=key)
    finally:
        await prod.stop()


async def test_hostile_records_are_dead_lettered_and_the_stream_goes_on(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    await ensure_topics(
        test_settings,
        [
            TopicSpec(
                test_settings.input_topic,
                test_settings.input_partitions,
                "delete",
                {"max.message.bytes": str(BIG)},
            )
        ],
    )
    worker = worker_factory()
    job = triggers_job(receiver.url("/hostile"))
    await apply_jobs(test_env, tmp_path, worker, job)

    records: list[tuple[bytes, bytes]] = []
    expected_valid = []
    for n, (name, value) in enumerate(hostile()):
        records.append((name.encode(), value))
        records.append((f"v{n}".encode(), valid(f"v{n}", n)))
        expected_valid.append(f"v{n}")
    records += [(f"after{n}".encode(), valid(f"after{n}", n)) for n in range(6)]
    expected_valid += [f"after{n}" for n in range(6)]
    await produce_big(test_settings, records)

    await wait_for_requests(receiver, "/hostile", len(expected_valid), wait_s=90)
    assert sorted(r.json()["id"] for r in receiver.for_path("/hostile")) == sorted(expected_valid)
    await wait_for_commits_at_end(
        test_settings, test_settings.input_topic, router_group(test_settings), wait_s=60
    )
    hostile_names = {name for name, _ in hostile()}
    found = await wait_for_dead_letters(
        test_settings, lambda k, _d: k in hostile_names, len(hostile_names), wait_s=30
    )
    letters: dict[str, Any] = {str(k): doc for k, doc in found}
    assert set(letters) == {name for name, _ in hostile()}
    assert "more than the 1000000 allowed" in letters["five-mib"]["reason"]
    assert letters["five-mib"]["event"]["truncated"] is True
    assert "more than the 1000000 allowed" in letters["big-id"]["reason"]
    assert "id: 400000 characters" in letters["long-id"]["reason"]
    assert "previous state kept" in letters["audiences"]["reason"]
    for name in ("deep-300", "deep-600", "deep-1000", "deep-1020", "deep-255"):
        assert "input record" in letters[name]["reason"], letters[name]["reason"]

    started = time.monotonic()
    worker.stop(grace=30)
    assert worker.proc is not None and worker.proc.returncode is not None
    assert time.monotonic() - started < 20, "the worker did not stop within its grace period"
