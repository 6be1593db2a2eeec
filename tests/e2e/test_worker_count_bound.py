"""`worker_count` holds when workers outnumber it (issue 10, item 7): three workers, a job
with `worker_count` 2 over an 8-partition queue. The job is delivered by the worker holding
its delivery slot; when that worker stops (SIGTERM) under load, the job moves to another
one, which starts only after the first let its requests end. The endpoint never sees more
than two requests at once, and every event of every partition is delivered (none starves)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    apply_jobs_wait,
    job_status,
    triggers_job,
    wait_for_delivered,
    wait_for_log,
    wait_for_requests,
    wait_for_slots_shared,
)
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
    workers = {
        name: worker_factory(WEBHOOKS_WORKER_ID=name, WEBHOOKS_QUEUE_PARTITIONS="8")
        for name in ("one", "two", "three")
    }
    await wait_for_slots_shared(*workers.values())
    receiver.behaviours["/bound"] = Behaviour(respond=lambda n: (200, 0.05, {}, b"{}"))
    job = triggers_job(receiver.url("/bound"), worker_count=2)
    await apply_jobs_wait(test_env, tmp_path, job)
    holder_name = next(iter((await job_status(test_env, job["id"]))["workers"]))
    holder = workers[holder_name]

    users = 40
    records = [toggle(f"w{user}", step) for step in range(3) for user in range(users)]
    await produce(test_settings, test_settings.input_topic, records)
    await wait_for_requests(receiver, "/bound", 20)
    await asyncio.to_thread(holder.stop)  # the job moves while requests are in flight
    others = [w for name, w in workers.items() if name != holder_name]
    taking_over = [
        asyncio.create_task(wait_for_log(w, f"delivery started for job {job['id']}"))
        for w in others
    ]
    done, pending = await asyncio.wait(taking_over, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()  # a worker took the job over
    seen = await wait_for_delivered(
        receiver, "/bound", lambda r: (r.json()["id"], r.json()["data"]["n"]), len(records), 120
    )
    assert len(seen) == len(records), f"{len(records) - len(seen)} events never delivered"
    assert receiver.max_in_flight["/bound"] <= 2, receiver.max_in_flight["/bound"]
    assert receiver.max_in_flight["/bound"] == 2  # and the bound is used, not undershot
