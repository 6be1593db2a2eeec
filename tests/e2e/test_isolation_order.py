"""Isolation: a job whose endpoint fails, sleeps for an hour and then hangs never delays
another job on the same input; its own backlog arrives whole once it is resumed.
Order: one user's events arrive in input order for a job, retries included."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    apply_jobs,
    run_cli_async,
    triggers_job,
    wait_for_delivered,
    wait_for_requests,
    wait_for_state,
)
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import toggle

ISOLATION = {
    "WEBHOOKS_HTTP_TOTAL_TIMEOUT_S": "2",
    "WEBHOOKS_RETRY_BACKOFF_INITIAL_S": "0.1",
    "WEBHOOKS_RETRY_BACKOFF_MAX_S": "0.5",
}


def event(user: str, n: int) -> tuple[bytes, bytes]:
    return toggle(user, n, produced_at=time.time())


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def test_failing_sleeping_hanging_job_does_not_delay_another(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, **ISOLATION}
    worker = worker_factory(**ISOLATION)
    receiver.behaviours["/a"] = Behaviour(
        respond=lambda n: (503, 0.0, {"Retry-After": "3600"} if n >= 3 else {}, b"{}")
    )
    job_a = triggers_job(receiver.url("/a"))
    job_b = triggers_job(receiver.url("/b"))
    await apply_jobs(env, tmp_path, worker, job_a, job_b)

    total = 0

    async def produce_steadily(seconds: float) -> None:
        nonlocal total
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            batch = [event(f"user{total + i}", 0) for i in range(10)]
            await produce(test_settings, test_settings.input_topic, batch)
            total += len(batch)
            await asyncio.sleep(0.25)

    producing = asyncio.create_task(produce_steadily(16))
    await wait_for_state(env, job_a["id"], "sleeping")  # 503 x3, then Retry-After: 3600
    # Wake A by hand into an endpoint that hangs past the request timeout.
    receiver.behaviours["/a"] = Behaviour(respond=lambda n: (200, 30.0, {}, b"{}"))
    assert (await run_cli_async(env, "jobs", "resume", job_a["id"])).code == 0
    await producing

    await wait_for_requests(receiver, "/b", total, wait_s=30)
    latencies = [r.at - r.json()["data"]["produced_at"] for r in receiver.for_path("/b")]
    assert p99(latencies) < 2.0, f"job B p99 latency {p99(latencies):.2f} s"

    receiver.behaviours["/a"] = Behaviour(respond=lambda n: (200, 0.0, {}, b"{}"))
    assert (await run_cli_async(env, "jobs", "resume", job_a["id"])).code == 0
    delivered = await wait_for_delivered(receiver, "/a", lambda r: r.json()["id"], total)
    assert len(delivered) == total, f"job A delivered {len(delivered)} of its {total} events"


async def test_one_users_events_arrive_in_order_through_retries(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, **ISOLATION}
    worker = worker_factory(**ISOLATION)
    rng = random.Random(3)
    receiver.behaviours["/order"] = Behaviour(
        respond=lambda n: (500 if rng.random() < 0.3 else 200, 0.0, {}, b"{}")
    )
    job = triggers_job(receiver.url("/order"), worker_count=5)
    await apply_jobs(env, tmp_path, worker, job)
    records = [event(f"o{u}", n) for n in range(40) for u in range(3)]
    await produce(test_settings, test_settings.input_topic, records)
    await wait_for_delivered(receiver, "/order", lambda r: r.body, len(records))
    ok = [r for r in receiver.for_path("/order") if r.status == 200]
    for user in ("o0", "o1", "o2"):
        seq = [r.json()["data"]["n"] for r in ok if r.json()["id"] == user]
        assert seq == list(range(40)), f"{user}: {seq}"
    assert any(r.status == 500 for r in receiver.for_path("/order")), "no retry happened"
