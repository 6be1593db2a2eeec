"""Job status that tells the truth, `jobs delete`, `auth delete` and `jobs apply --wait`,
from the user's side: real broker, real worker processes, a real HTTPS receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.devtools.receiver import WebhookReceiver
from app.domain.status_summary import NO_LIVE_WORKER
from app.settings import Settings
from app.transport.kafka import write_record
from app.transport.kafka_admin import admin_client, consumer_group_exists
from tests.support.jobs import (
    SPREAD_SLOTS,
    apply_jobs,
    apply_jobs_wait,
    job_status,
    run_cli_async,
    settle,
    triggers_job,
    triggers_job_in_slot,
    wait_for_requests,
    wait_for_slots_shared,
    wait_for_state,
)
from tests.support.kafka_io import produce, read_json
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import toggle

FAST = {"WEBHOOKS_STATUS_HEARTBEAT_S": "1"}  # stale after 3 s


def job_line(listed: str, job_id: str) -> str:
    return next(line for line in listed.splitlines() if line.startswith(job_id))


async def wait_until(check: Callable[[], Any], wait_s: float = 30.0) -> None:
    await eventually(check, bool, wait_s=wait_s, interval_s=0.3)


async def topic_exists(settings: Settings, topic: str) -> bool:
    async with admin_client(settings) as admin:
        return topic in await admin.list_topics()


async def test_status_drops_a_killed_worker_and_list_shows_real_and_wanted_state(
    test_env: dict[str, str],
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, **FAST}
    worker = worker_factory(**FAST, WEBHOOKS_WORKER_ID="alpha")
    job = triggers_job(receiver.url("/live"))
    await apply_jobs(env, tmp_path, worker, job)
    report = await wait_for_state(env, job["id"], "running")
    assert report["workers"] == {"alpha": "running"} and report["wanted"] == "running"

    # Unchanged for longer than the stale interval: the heartbeat keeps the worker listed.
    await asyncio.sleep(4.5)
    assert (await job_status(env, job["id"]))["workers"] == {"alpha": "running"}

    assert (await run_cli_async(env, "jobs", "stop", job["id"])).code == 0
    await wait_for_state(env, job["id"], "stopped")
    listed = await run_cli_async(env, "jobs", "list")
    assert listed.code == 0, listed.err
    assert "WANTED" in listed.out
    assert job_line(listed.out, job["id"]).split()[2:4] == ["stopped", "stopped"]
    assert (await run_cli_async(env, "jobs", "resume", job["id"])).code == 0
    await wait_for_state(env, job["id"], "running")

    worker.kill()  # no goodbye: only the missing heartbeats tell
    report = await wait_for_state(env, job["id"], NO_LIVE_WORKER, wait_s=15)
    assert report["workers"] == {} and report["next_run"] is None
    assert report["wanted"] == "running"
    line = job_line((await run_cli_async(env, "jobs", "list")).out, job["id"])
    assert NO_LIVE_WORKER in line and line.split()[-3] == "running"  # WANTED column


async def test_cleanly_stopped_worker_disappears_at_once(
    test_env: dict[str, str],
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    # Default heartbeat (5 s, stale after 15 s): only the final record can be this quick.
    job = triggers_job(receiver.url("/clean"))
    await apply_jobs(test_env, tmp_path, worker, job)
    await wait_for_state(test_env, job["id"], "running")
    worker.stop()
    stopped_at = time.monotonic()
    report = await wait_for_state(test_env, job["id"], NO_LIVE_WORKER, wait_s=10)
    assert time.monotonic() - stopped_at < 10
    assert report["workers"] == {}


async def test_delete_stops_delivery_and_removes_queue_group_and_statuses(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, **FAST}
    first = worker_factory(**FAST, WEBHOOKS_WORKER_ID="one")
    second = worker_factory(**FAST, WEBHOOKS_WORKER_ID="two")
    await wait_for_slots_shared(first, second)
    # On different workers: each job is delivered by the one holding its slot.
    job = triggers_job_in_slot(SPREAD_SLOTS[0], receiver.url("/gone"))
    keep = triggers_job_in_slot(SPREAD_SLOTS[-1], receiver.url("/kept"))
    await apply_jobs_wait(env, tmp_path, job, keep)
    await produce(test_settings, test_settings.input_topic, [toggle("u1", 0)])
    await wait_for_requests(receiver, "/gone", 1)
    await wait_for_requests(receiver, "/kept", 1)
    await settle(receiver, 1.0)
    group = f"{test_settings.app_id}-delivery-{job['id']}"
    queue = f"webhook-queue-{job['id']}"
    report = await wait_for_state(env, job["id"], "running")
    assert report["backlog"] == 0
    assert len(report["workers"]) == 1, report
    holder = first if "one" in report["workers"] else second
    other = second if holder is first else first
    assert set((await job_status(env, keep["id"]))["workers"]) == {other.env["WEBHOOKS_WORKER_ID"]}

    deleted = await run_cli_async(env, "jobs", "delete", job["id"])
    assert deleted.code == 0, deleted.err
    assert f"queue topic {queue} deleted" in deleted.out
    assert f"consumer group {group} deleted" in deleted.out

    assert f"delivery stopped for job {job['id']}" in holder.since_start()
    assert f"delivery started for job {job['id']}" not in other.since_start()
    for proc in (first, second):
        assert proc.proc is not None and proc.proc.poll() is None  # no restart
    assert not await topic_exists(test_settings, queue)
    assert not await consumer_group_exists(test_settings, group)
    statuses = dict(await read_json(test_settings, test_settings.status_topic))
    assert all(
        value is None for key, value in statuses.items() if key and key.startswith(job["id"])
    )
    shown = await run_cli_async(env, "jobs", "show", job["id"])
    assert shown.code == 2 and "no job" in shown.err
    assert job["id"] not in (await run_cli_async(env, "jobs", "list")).out

    # The other job still delivers; the deleted one gets nothing more.
    await produce(test_settings, test_settings.input_topic, [toggle("u1", 1)])
    await wait_for_requests(receiver, "/kept", 2)
    await settle(receiver, 2.0)
    assert len(receiver.for_path("/gone")) == 1


async def test_delete_with_backlog_is_refused_unless_forced(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, **FAST}
    worker = worker_factory(**FAST)
    job = triggers_job(receiver.url("/held"))
    await apply_jobs(env, tmp_path, worker, job)
    assert (await run_cli_async(env, "jobs", "stop", job["id"])).code == 0
    await wait_for_state(env, job["id"], "stopped")
    await produce(test_settings, test_settings.input_topic, [toggle(f"u{i}", 0) for i in range(3)])
    await wait_until(lambda: _backlog_is(env, job["id"], 3))

    refused = await run_cli_async(env, "jobs", "delete", job["id"])
    assert refused.code == 1
    assert "3 undelivered" in refused.err and "--force" in refused.err
    assert (await job_status(env, job["id"]))["backlog"] == 3  # nothing deleted

    forced = await run_cli_async(env, "jobs", "delete", "--force", job["id"])
    assert forced.code == 0, forced.err
    assert "3 undelivered event(s) dropped" in forced.out
    assert not await topic_exists(test_settings, f"webhook-queue-{job['id']}")
    assert receiver.for_path("/held") == []


async def _backlog_is(env: dict[str, str], job_id: str, count: int) -> bool:
    return bool((await job_status(env, job_id))["backlog"] == count)


async def test_auth_delete_is_refused_while_a_job_uses_it(
    test_env: dict[str, str], receiver: WebhookReceiver, tmp_path: Path
) -> None:
    assert (await run_cli_async(test_env, "topics", "create")).code == 0
    auth = {"id": "crm", "label": "CRM", "method": "headers", "headers": "X-Key: s3cr3t"}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(auth))
    assert (await run_cli_async(test_env, "auth", "apply", str(tmp_path / "a.yaml"))).code == 0
    job = triggers_job(receiver.url("/auth"), authorization="crm")
    (tmp_path / "j.yaml").write_text(yaml.safe_dump(job))
    assert (await run_cli_async(test_env, "jobs", "apply", str(tmp_path / "j.yaml"))).code == 0

    refused = await run_cli_async(test_env, "auth", "delete", "crm")
    assert refused.code == 1 and job["id"] in refused.err
    assert "crm" in (await run_cli_async(test_env, "auth", "list")).out

    # No worker runs: nothing reports the job, so delete need not wait.
    assert (await run_cli_async(test_env, "jobs", "delete", job["id"])).code == 0
    deleted = await run_cli_async(test_env, "auth", "delete", "crm")
    assert deleted.code == 0, deleted.err
    assert "crm" not in (await run_cli_async(test_env, "auth", "list")).out
    assert (await run_cli_async(test_env, "auth", "delete", "crm")).code == 2


async def test_apply_wait_returns_when_the_jobs_worker_runs_the_version(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, **FAST}
    workers = [worker_factory(**FAST, WEBHOOKS_WORKER_ID=w) for w in ("w1", "w2")]
    await wait_for_slots_shared(*workers)
    job = triggers_job(receiver.url("/wait"))
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    applied = await run_cli_async(env, "jobs", "apply", "--wait", "--timeout", "60", str(path))
    assert applied.code == 0, applied.err
    report = await job_status(env, job["id"])
    # One worker delivers the job (the holder of its delivery slot), and it runs the version.
    assert len(report["worker_versions"]) == 1 and set(report["worker_versions"]) <= {"w1", "w2"}
    assert set(report["worker_versions"].values()) == {report["version"]}
    holder = next(iter(report["worker_versions"]))
    assert f"runs on worker {holder}" in applied.out

    # A new version reaches it before --wait returns.
    path.write_text(yaml.safe_dump({**job, "label": "second version"}))
    applied = await run_cli_async(env, "jobs", "apply", "--wait", str(path))
    assert applied.code == 0, applied.err
    report = await job_status(env, job["id"])
    assert report["config"]["label"] == "second version"
    assert set(report["worker_versions"].values()) == {report["version"]}

    # A live worker still running an older version of the job: --wait times out, naming it.
    stuck = {
        "job_id": job["id"],
        "worker_id": "stuck",
        "status": {"state": "running"},
        "version": "0ld",
    }

    async def heartbeat() -> None:
        while True:
            doc = {**stuck, "updated_at": time.time()}
            await write_record(
                test_settings, test_settings.status_topic, f"{job['id']}/stuck", orjson.dumps(doc)
            )
            await asyncio.sleep(0.5)

    beating = asyncio.create_task(heartbeat())
    try:
        path.write_text(yaml.safe_dump({**job, "label": "third version"}))
        timed_out = await run_cli_async(env, "jobs", "apply", "--wait", "--timeout", "4", str(path))
    finally:
        beating.cancel()
    assert timed_out.code == 1
    assert "stuck" in timed_out.err and holder not in timed_out.err
