"""Broker restart mid-stream: the project's broker is stopped and started again while
events flow; every event is delivered."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from tests.support.broker import KAFKA_SH
from tests.support.jobs import apply_jobs, triggers_job, wait_for_delivered
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import toggle

EVENTS = 1500


def event(n: int) -> tuple[bytes, bytes]:
    return toggle(f"r{n % 100}", n // 100, n=n)


async def restart_broker() -> None:
    for action in ("stop", "start"):
        proc = await asyncio.create_subprocess_exec(str(KAFKA_SH), action)
        assert await proc.wait() == 0, f"kafka.sh {action} failed"


async def test_broker_restart_loses_nothing(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    status = subprocess.run([str(KAFKA_SH), "status"], capture_output=True, text=True)
    assert status.returncode == 0, "the project's broker must be running"
    worker = worker_factory()
    job = triggers_job(receiver.url("/restart"))
    await apply_jobs(test_env, tmp_path, worker, job)

    await produce(test_settings, test_settings.input_topic, [event(n) for n in range(EVENTS // 2)])
    await restart_broker()
    await produce(
        test_settings, test_settings.input_topic, [event(n) for n in range(EVENTS // 2, EVENTS)]
    )
    delivered = await wait_for_delivered(
        receiver, "/restart", lambda r: r.json()["data"]["n"], EVENTS, wait_s=180
    )
    missing = sorted(set(range(EVENTS)) - delivered)
    assert not missing, f"{len(missing)} events lost across the broker restart: {missing[:10]}"
