"""Crash proof: kill -9 the worker three times mid-stream while the endpoint fails 10% of
requests and delays some. Every event arrives at least once; every duplicate carries the
webhook-id of its first delivery."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from app.devtools.receiver import Received, WebhookReceiver
from app.settings import Settings
from tests.support.behaviours import flaky
from tests.support.jobs import apply_jobs, triggers_job, wait_for_delivered, wait_for_requests
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import toggle

EVENTS = 20_000
USERS = 500
MAX_DUPLICATES = 0.4  # of EVENTS


def input_records() -> list[tuple[bytes, bytes]]:
    return [toggle(f"u{n % USERS}", n // USERS, n=n) for n in range(EVENTS)]


async def test_kill_9_three_times_loses_nothing(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/crash"] = flaky(7)
    worker = WorkerProcess(env=test_env, log_path=tmp_path / "worker.log")
    worker.start()
    try:
        job = triggers_job(receiver.url("/crash"), worker_count=20)
        await apply_jobs(test_env, tmp_path, worker, job)
        producing = asyncio.create_task(
            produce(test_settings, test_settings.input_topic, input_records())
        )
        for threshold in (3_000, 8_000, 14_000):
            await wait_for_requests(receiver, "/crash", threshold, wait_s=180)
            worker.kill()
            worker.start()
        await producing
        await wait_for_delivered(receiver, "/crash", delivered_n, EVENTS, wait_s=300)
    finally:
        worker.stop()

    first_id: dict[int, str] = {}
    deliveries: dict[int, int] = defaultdict(int)
    for req in receiver.for_path("/crash"):
        n = req.json()["data"]["n"]
        if req.status >= 300:
            continue
        deliveries[n] += 1
        first_id.setdefault(n, req.headers["webhook-id"])
        assert req.headers["webhook-id"] == first_id[n], f"event {n}: webhook-id changed"
    missing = set(range(EVENTS)) - set(deliveries)
    assert not missing, f"{len(missing)} events never delivered, e.g. {sorted(missing)[:5]}"
    duplicates = sum(c - 1 for c in deliveries.values())
    print(f"crash test: {EVENTS} events, {duplicates} duplicates ({duplicates / EVENTS:.2%})")
    # Measured ~15 % (three kills, each resending what was delivered but not yet committed
    # or recorded in the commit's metadata). Far more means restarts resend what they
    # should skip (the commit metadata is not written or not read).
    assert duplicates <= MAX_DUPLICATES * EVENTS, f"{duplicates} duplicates"


def delivered_n(req: Received) -> int:
    n: int = req.json()["data"]["n"]
    return n
