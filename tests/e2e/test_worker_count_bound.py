"""`worker_count` holds when workers outnumber it (issue 10, item 7): three workers share a
job with `worker_count` 2 over an 8-partition queue. The endpoint never sees more than two
requests at once, and every event of every partition is delivered (none starves)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import apply_jobs, triggers_job, wait_for_delivered, wait_for_log
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import toggle


async def test_three_workers_stay_within_worker_count_two(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    workers = [
        worker_factory(WEBHOOKS_WORKER_ID=name, WEBHOOKS_QUEUE_PARTITIONS="8")
        for name in ("one", "two", "three")
    ]
    receiver.behaviours["/bound"] = Behaviour(respond=lambda n: (200, 0.05, {}, b"{}"))
    job = triggers_job(receiver.url("/bound"), worker_count=2)
    await apply_jobs(test_env, tmp_path, workers[0], job)
    for worker in workers[1:]:
        await wait_for_log(worker, f"delivery started for job {job['id']}")
    await asyncio.sleep(3)  # let the three delivery consumers settle into one group

    users = 40
    records = [toggle(f"w{user}", step) for step in range(3) for user in range(users)]
    await produce(test_settings, test_settings.input_topic, records)
    seen = await wait_for_delivered(
        receiver, "/bound", lambda r: (r.json()["id"], r.json()["data"]["n"]), len(records), 120
    )
    assert len(seen) == len(records), f"{len(records) - len(seen)} events never delivered"
    assert receiver.max_in_flight["/bound"] <= 2, receiver.max_in_flight["/bound"]
    assert receiver.max_in_flight["/bound"] == 2  # and the bound is used, not undershot
