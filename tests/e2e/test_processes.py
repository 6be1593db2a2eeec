"""`webhooks worker --processes 2`: two worker processes under one supervisor.

The jobs spread over both processes (each holds half the delivery slots); a child killed
with -9 is started again and nothing is lost; SIGTERM to the supervisor stops both children
cleanly and it exits 0.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import yaml

from app.devtools.receiver import Received, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    SPREAD_SLOTS,
    run_cli_async,
    triggers_job_in_slot,
    wait_for_delivered,
    wait_for_log,
    wait_for_requests,
)
from tests.support.kafka_io import produce
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import toggle


def user_event(request: Received) -> tuple[str, str]:
    doc = request.json()
    return doc["id"], doc["data"]["segment_events"][0]["event"]


def child_pids(worker: WorkerProcess) -> list[int]:
    found = re.findall(r"worker: 2 processes \(pids (\d+), (\d+)\)", worker.since_start())
    assert found, worker.tail()
    return [int(p) for p in found[-1]]


def starts_by_pid(worker: WorkerProcess) -> dict[str, int]:
    """job id -> pid of the process that logged starting its delivery (last one wins)."""
    return {
        job: int(pid)
        for pid, job in re.findall(
            r"\[(\d+)\] \[INFO\] delivery started for job (\w+)", worker.since_start()
        )
    }


async def test_two_processes_share_the_jobs_survive_a_kill_and_stop_cleanly(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = worker_factory(WEBHOOKS_PROCESSES="2", WEBHOOKS_KAFKA_SESSION_TIMEOUT_S="6")
    pids = child_pids(worker)
    await eventually(  # the slots are shared out: 32 each
        lambda: set(
            re.findall(r"\[(\d+)\] \[INFO\] delivery slots: .*\(holding 32\)", worker.since_start())
        ),
        lambda holders: holders == {str(p) for p in pids},
        wait_s=60,
        what=lambda holders: f"slots held by {holders}:\n{worker.tail()}",
    )
    jobs = [triggers_job_in_slot(s, receiver.url(f"/p{s}")) for s in SPREAD_SLOTS]
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(jobs))
    applied = await run_cli_async(test_env, "jobs", "apply", str(path), "--wait")
    assert applied.code == 0, applied.err
    starts = starts_by_pid(worker)
    assert {starts[j["id"]] for j in jobs} == set(pids), "each process delivers some jobs"

    first = [toggle(f"u{i}", 0) for i in range(20)]
    await produce(test_settings, test_settings.input_topic, first)
    for s in SPREAD_SLOTS:
        await wait_for_requests(receiver, f"/p{s}", 20)

    victim = pids[1]
    os.kill(victim, signal.SIGKILL)
    await wait_for_log(worker, f"worker process 1 (pid {victim}) exited with status -9")
    second = [toggle(f"u{i}", 1) for i in range(20)]
    await produce(test_settings, test_settings.input_topic, second)
    for s in SPREAD_SLOTS:  # the survivor or the restarted child delivers the rest
        kinds = await wait_for_delivered(receiver, f"/p{s}", user_event, 40, wait_s=90)
        assert kinds == {(f"u{i}", e) for i in range(20) for e in ("enter", "exit")}

    restarted = await eventually(
        lambda: re.findall(r"\[(\d+)\] \[INFO\] router ready", worker.since_start()),
        lambda ready: len(ready) >= 3,
        wait_s=60,
        what="the killed child started again",
    )
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGTERM)  # the supervisor only, as Kubernetes does
    assert worker.proc.wait(timeout=60) == 0, worker.tail()
    for pid in {int(p) for p in restarted}:
        assert not _alive(pid), f"child {pid} still runs after the supervisor stopped"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
