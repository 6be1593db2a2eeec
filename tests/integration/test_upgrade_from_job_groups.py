"""Upgrading from the versions that ran a consumer group member per job and worker.

The committed offsets stay in each job's group (`delivery_group`), so the new engine goes on
from them: nothing replayed, nothing skipped. While a worker of the old version still has a
consumer in a job's group, the new worker does not deliver that job (that would make two
deliverers and break `worker_count`); it says why in its log, and starts the job as soon as
the old consumer has left.
"""

from __future__ import annotations

from pathlib import Path

from aiokafka import AIOKafkaConsumer

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from app.topic_catalog import delivery_group
from app.transport.kafka_security import connection_options
from tests.support.jobs import (
    apply_jobs,
    run_cli_async,
    settle,
    triggers_job,
    wait_for_log,
    wait_for_requests,
)
from tests.support.kafka_io import produce
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import toggle


async def test_a_job_waits_for_an_old_versions_consumer_then_goes_on_from_its_offsets(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/up"), trigger_events="enter_exit")
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(test_settings, test_settings.input_topic, [toggle("u1", 0)])
    await wait_for_requests(receiver, "/up", 1)

    assert (await run_cli_async(test_env, "jobs", "stop", job["id"])).code == 0
    await wait_for_log(worker, f"delivery stopped for job {job['id']}")
    # A worker of the old version: a member of the job's own group, holding its queue.
    old = AIOKafkaConsumer(
        f"webhook-queue-{job['id']}",
        **connection_options(test_settings),
        group_id=delivery_group(test_settings, job["id"]),
        enable_auto_commit=False,
    )
    await old.start()
    try:
        await eventually(
            lambda: old.getmany(timeout_ms=200), lambda _: bool(old.assignment()), wait_s=30
        )
        await produce(test_settings, test_settings.input_topic, [toggle("u1", 1)])
        assert (await run_cli_async(test_env, "jobs", "resume", job["id"])).code == 0
        await wait_for_log(
            worker, "not started yet: 1 consumer(s) of an older version are still in group"
        )
        assert len(receiver.for_path("/up")) == 1, "no second deliverer beside the old one"
    finally:
        await old.stop()

    got = await wait_for_requests(receiver, "/up", 2, wait_s=60)
    await settle(receiver)
    events = [r.json()["data"]["segment_events"][0]["event"] for r in receiver.for_path("/up")]
    assert events == ["enter", "exit"], "the first event is not replayed, the second not lost"
    assert len(got) == 2
