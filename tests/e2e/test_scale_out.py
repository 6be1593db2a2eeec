"""Scale-out: two workers share a job's queue through its consumer group, and together stay
within the job's worker_count."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    apply_jobs,
    job_status,
    triggers_job,
    wait_for_log,
    wait_for_requests,
)
from tests.support.kafka_io import produce
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import toggle


async def test_two_workers_share_a_job_within_worker_count(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    first = worker_factory(WEBHOOKS_WORKER_ID="first")
    second = worker_factory(WEBHOOKS_WORKER_ID="second")
    receiver.behaviours["/shared"] = Behaviour(respond=lambda n: (200, 0.1, {}, b"{}"))
    job = triggers_job(receiver.url("/shared"), worker_count=4)
    await apply_jobs(test_env, tmp_path, first, job)
    await wait_for_log(second, f"delivery started for job {job['id']}")
    # both delivery consumers are in the job's group: each logged its share of worker_count
    for worker in (first, second):
        await wait_for_log(worker, f"job {job['id']}: queue partitions [")

    records = [toggle(f"s{user}", n) for n in range(10) for user in range(20)]
    await produce(test_settings, test_settings.input_topic, records)
    await wait_for_requests(receiver, "/shared", len(records), wait_s=90)
    assert receiver.max_in_flight["/shared"] <= 4
    report = await eventually(  # statuses are written once a second
        lambda: job_status(test_env, job["id"]),
        lambda r: r["counters"]["delivered_requests"] >= len(records),
        wait_s=15,
        what=lambda r: f"counters never reached {len(records)}: {r}",
    )
    assert set(report["workers"]) == {"first", "second"}
