"""Backfill of existing users: exactly the current members, once each, with their latest
profile; live events keep flowing; an interrupted backfill completes after a restart."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    apply_jobs,
    job_status,
    run_cli_async,
    settle,
    triggers_job,
    wait_for_delivered,
    wait_for_requests,
)
from tests.support.kafka_io import produce, wait_for_records
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import input_record


def rec(user: str, *events: tuple[str, str], **data: Any) -> tuple[bytes, bytes]:
    return input_record(user, {"email": f"{user}@example.com", **data}, *events)


async def wait_backfill_done(
    env: dict[str, str], job_id: str, wait_s: float = 60
) -> dict[str, Any]:
    return await eventually(
        lambda: job_status(env, job_id),
        lambda report: bool(report["backfill"]) and report["backfill"]["state"] == "done",
        wait_s=wait_s,
        interval_s=0.3,
        what=lambda report: f"backfill of {job_id} not done: {(report or {}).get('backfill')}",
    )


async def test_backfill_sends_exactly_the_current_members(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    # A job that exists from the start lets the test see the router has routed everything.
    probe = triggers_job(receiver.url("/probe"), audiences=["a", "b", "c"])
    await apply_jobs(test_env, tmp_path, worker, probe)
    await produce(
        test_settings,
        test_settings.input_topic,
        [
            rec("u1", ("enter", "a"), plan="old"),
            rec("u2", ("enter", "a")),
            rec("u2", ("exit", "a")),  # entered then exited: not a member
            rec("u3", ("enter", "a"), ("enter", "b")),  # in two of the job's audiences: once
            rec("u4", ("enter", "c")),  # not one of the job's audiences
            rec("u5", ("enter", "b")),
            rec("u1", plan="new"),  # latest profile of u1
        ],
    )
    await wait_for_requests(receiver, "/probe", 6)

    job = triggers_job(receiver.url("/backfill"), audiences=["a", "b"], existing_users=True)
    await apply_jobs(test_env, tmp_path, worker, job)
    report = await wait_backfill_done(test_env, job["id"])
    assert report["backfill"]["members_sent"] == 3
    await produce(test_settings, test_settings.input_topic, [rec("u6", ("enter", "b"))])  # live
    await wait_for_requests(receiver, "/backfill", 4)
    await settle(receiver, 1.5)
    got = {r.json()["id"]: r.json()["data"] for r in receiver.for_path("/backfill")}
    assert sorted(got) == ["u1", "u3", "u5", "u6"]
    assert got["u1"]["plan"] == "new"
    assert got["u1"]["email"] == "u1@example.com"
    event = got["u3"]["segment_events"][0]
    assert event["event"] == "enter" and event["slug"] == "a" and event["backfill"] is True
    assert len(receiver.for_path("/backfill")) == 4

    # Backfilling again by command sends the members again, with a progress report.
    result = await run_cli_async(test_env, "jobs", "backfill", job["id"])
    assert result.code == 0, result.err
    assert "requested" in result.out
    await wait_for_requests(receiver, "/backfill", 7)


async def test_interrupted_backfill_completes_after_restart(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    slow = {"WEBHOOKS_BACKFILL_PARTITION_PAUSE_S": "4"}
    worker = worker_factory(**slow)
    members = [rec(f"m{i}", ("enter", "a")) for i in range(400)]
    probe = triggers_job(receiver.url("/probe2"), audiences=["a"])
    await apply_jobs(test_env, tmp_path, worker, probe)
    await produce(test_settings, test_settings.input_topic, members)
    await wait_for_requests(receiver, "/probe2", 400)

    job = triggers_job(receiver.url("/resumed"), audiences=["a"], existing_users=True)
    await apply_jobs(test_env, tmp_path, worker, job)
    progress_topic = test_settings.backfill_progress_topic
    first = await wait_for_records(test_settings, progress_topic, 1, wait_s=30)
    assert first[-1][1]["partitions_done"] and first[-1][1]["state"] == "running"
    worker.kill()  # in the pause after the first of two partitions
    assert (await job_status(test_env, job["id"]))["backfill"]["state"] == "running"

    worker_factory(**slow)
    report = await wait_backfill_done(test_env, job["id"], wait_s=90)
    assert report["backfill"]["members_sent"] == 400
    ids = await wait_for_delivered(receiver, "/resumed", lambda r: r.json()["id"], 400)
    assert ids == {f"m{i}" for i in range(400)}
    assert uuid.UUID(report["backfill"]["request_id"])
