"""Scale-out: workers share the jobs through the delivery-slots group. Each job has one
deliverer at a time, so its worker_count holds across workers; different jobs run on
different workers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import yaml

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    SPREAD_SLOTS,
    job_status,
    run_cli_async,
    triggers_job_in_slot,
    wait_for_requests,
    wait_for_slots_shared,
)
from tests.support.kafka_io import produce
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import toggle


async def test_two_workers_share_the_jobs_each_job_within_worker_count(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    first = worker_factory(WEBHOOKS_WORKER_ID="first")
    second = worker_factory(WEBHOOKS_WORKER_ID="second")
    await wait_for_slots_shared(first, second)
    jobs = [
        triggers_job_in_slot(slot, receiver.url(f"/shared-{slot}"), worker_count=3)
        for slot in SPREAD_SLOTS
    ]
    for slot in SPREAD_SLOTS:
        receiver.behaviours[f"/shared-{slot}"] = Behaviour(respond=lambda n: (200, 0.05, {}, b"{}"))
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(jobs))
    applied = await run_cli_async(test_env, "jobs", "apply", str(path), "--wait")
    assert applied.code == 0, applied.err

    records = [toggle(f"s{user}", n) for n in range(5) for user in range(20)]
    await produce(test_settings, test_settings.input_topic, records)
    for slot in SPREAD_SLOTS:
        await wait_for_requests(receiver, f"/shared-{slot}", len(records), wait_s=90)
        assert receiver.max_in_flight[f"/shared-{slot}"] <= 3
    holders: dict[str, str] = {}
    for job in jobs:
        job_id: str = job["id"]
        report = await eventually(  # statuses are written once a second
            functools.partial(job_status, test_env, job_id),
            lambda r: r["counters"]["delivered_requests"] >= len(records),
            wait_s=15,
            what=lambda r: f"counters never reached {len(records)}: {r}",
        )
        assert len(report["workers"]) == 1, f"one deliverer per job: {report['workers']}"
        holders[job_id] = next(iter(report["workers"]))
    assert set(holders.values()) == {"first", "second"}, holders
