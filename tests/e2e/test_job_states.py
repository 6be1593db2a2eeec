"""Job state transitions with short schedules: error after 10 failed requests, failed when
errors persist, sleeping on Retry-After, stop keeping the backlog, resume delivering it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    apply_jobs,
    job_status,
    run_cli_async,
    settle,
    triggers_job,
    wait_for_counter,
    wait_for_entry,
    wait_for_requests,
    wait_for_state,
)
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import toggle

FAST = {
    "WEBHOOKS_RETRY_BACKOFF_INITIAL_S": "0.05",
    "WEBHOOKS_RETRY_BACKOFF_MAX_S": "0.1",
    "WEBHOOKS_JOB_RETRY_INITIAL_S": "1.5",
    "WEBHOOKS_JOB_RETRY_MAX_S": "1.5",
    "WEBHOOKS_JOB_FAILED_AFTER_S": "6",
}


def enter(user: str, n: int = 0) -> tuple[bytes, bytes]:
    return toggle(user, 0, n=n)


def answer(status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> Behaviour:
    return Behaviour(respond=lambda n: (status, 0.0, headers or {}, body))


async def test_error_then_failed_then_resume(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, **FAST}
    worker = worker_factory(**FAST)
    receiver.behaviours["/err"] = answer(500, b'{"error":"boom at the endpoint"}')
    job = triggers_job(receiver.url("/err"))
    await apply_jobs(env, tmp_path, worker, job)
    await produce(test_settings, test_settings.input_topic, [enter("e1")])

    # The job alternates error (waiting 1.5 s for its next run) and running (~1 s of ten
    # retries) for WEBHOOKS_JOB_FAILED_AFTER_S. Its log records the state each status tick
    # (1 s) finds changed, so an error is always seen, a short run between errors may not
    # be, and failed may follow error or running (CI 2026-12-07: "error -> failed").
    error = await wait_for_entry(env, job["id"], "state", "running -> error")
    # The job log keeps the receiver's answer out (it can echo profile data); the status
    # keeps it (below, `last_error`).
    assert "HTTP 500" in error["message"] and "boom at the endpoint" not in str(error)
    assert error["to"] == "error" and error["next_run"]
    failed_entry = await wait_for_entry(env, job["id"], "state", "-> failed")
    assert failed_entry["from"] in ("error", "running") and failed_entry["to"] == "failed"
    failed = await wait_for_state(env, job["id"], "failed", wait_s=30)
    assert failed["counters"]["failed_requests"] >= 10
    assert failed["last_error"]["status"] == 500
    assert "boom at the endpoint" in failed["last_error"]["reason"]
    assert failed["next_run"] is None
    receiver.behaviours["/err"] = answer(200)
    seen = len(receiver.for_path("/err"))
    await asyncio.sleep(3)
    assert len(receiver.for_path("/err")) == seen, "a failed job must not send"

    assert (await run_cli_async(env, "jobs", "resume", job["id"])).code == 0
    await wait_for_state(env, job["id"], "running")
    got = await wait_for_requests(receiver, "/err", seen + 1)
    assert got[-1].status == 200 and got[-1].json()["id"] == "e1"
    report = await wait_for_counter(env, job["id"], "delivered_requests", 1)
    assert report["counters"]["delivered_requests"] == 1


async def test_retry_after_sleeps_without_error(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, **FAST}
    worker = worker_factory(**FAST)
    receiver.behaviours["/sleepy"] = Behaviour(
        respond=lambda n: (
            (503, 0.0, {"Retry-After": "4"}, b"{}") if n == 0 else (200, 0.0, {}, b"{}")
        )
    )
    job = triggers_job(receiver.url("/sleepy"))
    await apply_jobs(env, tmp_path, worker, job)
    await produce(test_settings, test_settings.input_topic, [enter("s1")])

    sleeping = await wait_for_state(env, job["id"], "sleeping")
    assert sleeping["next_run"] is not None
    got = await wait_for_requests(receiver, "/sleepy", 2, wait_s=20)
    assert got[1].at - got[0].at >= 3.5  # it waited for Retry-After
    assert got[1].headers["webhook-id"] == got[0].headers["webhook-id"]
    await wait_for_state(env, job["id"], "running")
    report = await wait_for_counter(env, job["id"], "delivered_requests", 1)
    assert report["counters"]["failed_requests"] == 0
    assert report["counters"]["delivered_requests"] == 1


async def test_stop_keeps_backlog_and_resume_delivers_it(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = worker_factory()
    job = triggers_job(receiver.url("/stop"))
    await apply_jobs(test_env, tmp_path, worker, job)
    assert (await run_cli_async(test_env, "jobs", "stop", job["id"])).code == 0
    await wait_for_state(test_env, job["id"], "stopped")
    await produce(test_settings, test_settings.input_topic, [enter(f"k{i}", i) for i in range(5)])
    await asyncio.sleep(3)
    assert receiver.for_path("/stop") == []
    report = await job_status(test_env, job["id"])
    assert report["backlog"] == 5

    assert (await run_cli_async(test_env, "jobs", "resume", job["id"])).code == 0
    await wait_for_requests(receiver, "/stop", 5)
    await settle(receiver, 1.0)
    assert sorted(r.json()["id"] for r in receiver.for_path("/stop")) == [f"k{i}" for i in range(5)]
