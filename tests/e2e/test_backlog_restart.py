"""Restart with a large backlog (issue 15): a worker drains wave 1 and stops; wave 2 is
produced while no worker runs; new workers start. Every event of both waves is delivered,
and the router's commit reaches the end of every input partition.

On 3c5538c (the router on Faust's per-message stream) the first ~100-900 records of wave 2
in every partition were committed without being routed, and a partition's commit could
stick at the start of wave 2.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from app.transport.input_consumer import router_group
from tests.support.jobs import apply_jobs, triggers_job_in_slot
from tests.support.kafka_io import produce, wait_for_commits_at_end
from tests.support.processes import WorkerProcess
from tests.support.records import input_record

WAVE = 200_000
PARTITIONS = "8"


def wave(number: int) -> list[tuple[bytes, bytes]]:
    """Every user once: wave 1 enters the audience, wave 2 exits it (one event each)."""
    kind = "enter" if number == 1 else "exit"
    return [
        input_record(f"u{n}", {"n": (number - 1) * WAVE + n}, (kind, "newsletter"))
        for n in range(WAVE)
    ]


async def wait_for_every_event(receiver: WebhookReceiver, path: str, wait_s: float) -> set[int]:
    """The `n` of every event answered 2xx on `path`, parsed once per request."""
    seen: set[int] = set()
    parsed = 0
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and len(seen) < 2 * WAVE:
        requests = receiver.for_path(path)
        for req in requests[parsed:]:
            if req.status < 300:
                seen.update(item["data"]["n"] for item in orjson.loads(req.body))
        parsed = len(requests)
        await asyncio.sleep(1.0)
    return seen


async def run_waves(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    tmp_path: Path,
    start_second_wave_workers: Callable[[dict[str, str]], list[WorkerProcess]],
    slot: int = 0,
) -> None:
    env = {**test_env, "WEBHOOKS_INPUT_PARTITIONS": PARTITIONS}
    settings = test_settings.model_copy(update={"input_partitions": int(PARTITIONS)})
    first = WorkerProcess(env=env, log_path=tmp_path / "first.log")
    first.start()
    workers = [first]
    try:
        job = triggers_job_in_slot(
            slot, receiver.url("/all"), batch=True, batch_size=1000, worker_count=5
        )
        await apply_jobs(env, tmp_path, first, job)
        await produce(settings, settings.input_topic, wave(1))
        await wait_for_commits_at_end(settings, settings.input_topic, router_group(settings))
        first.stop()

        await produce(settings, settings.input_topic, wave(2))
        workers = start_second_wave_workers(env)
        ends = await wait_for_commits_at_end(
            settings, settings.input_topic, router_group(settings), wait_s=180
        )
        assert sum(end for _, end in ends.values()) == 2 * WAVE
        seen = await wait_for_every_event(receiver, "/all", wait_s=300)
    finally:
        for worker in workers:
            worker.stop()
    missing = set(range(2 * WAVE)) - seen
    assert not missing, (
        f"{len(missing)} events never delivered "
        f"({len([n for n in missing if n >= WAVE])} of wave 2), e.g. {sorted(missing)[:5]}"
    )


async def test_restart_with_a_large_backlog_routes_every_record(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    def one_worker(env: dict[str, str]) -> list[WorkerProcess]:
        worker = WorkerProcess(env=env, log_path=tmp_path / "second.log")
        worker.start()
        return [worker]

    await run_waves(test_env, test_settings, receiver, tmp_path, one_worker)


@pytest.mark.parametrize("slot", [0, 63], ids=["job-stays", "job-moves"])
async def test_workers_joining_one_after_the_other_while_the_backlog_drains(
    slot: int,
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    def two_workers(env: dict[str, str]) -> list[WorkerProcess]:
        a = WorkerProcess(env={**env, "WEBHOOKS_WORKER_ID": "a"}, log_path=tmp_path / "a.log")
        b = WorkerProcess(env={**env, "WEBHOOKS_WORKER_ID": "b"}, log_path=tmp_path / "b.log")
        a.start(wait=False)
        time.sleep(2.0)  # b joins while a restores state and drains: a rebalance under load
        b.start(wait=False)
        a.wait_ready()
        b.wait_ready()
        return [a, b]

    await run_waves(test_env, test_settings, receiver, tmp_path, two_workers, slot)
