"""Job-wide batches (issue 10, item 2), as a user sees them at the endpoint: ten events for
ten users arriving together with `batch_size` 10 leave as one request, at once (the window
here is 30 s, so only a full batch can have left); fewer leave together after the window;
one user's events stay in order across batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from tests.support.jobs import apply_jobs, settle, triggers_job, wait_for_requests
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import toggle


async def test_a_full_batch_leaves_at_once_across_users(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = worker_factory(WEBHOOKS_BATCH_WINDOW_S="30")
    job = triggers_job(receiver.url("/full"), batch=True, batch_size=10)  # worker_count 5
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(
        test_settings, test_settings.input_topic, [toggle(f"user{n}", 0) for n in range(10)]
    )
    [request] = await wait_for_requests(receiver, "/full", 1, wait_s=20)
    assert sorted(item["id"] for item in request.json()) == sorted(f"user{n}" for n in range(10))


async def test_a_partial_batch_leaves_after_the_window_and_users_stay_in_order(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/partial"), batch=True, batch_size=10, worker_count=5)
    await apply_jobs(test_env, tmp_path, worker, job)
    records = [toggle(f"p{n}", 0) for n in range(3)]
    records += [toggle("p0", step) for step in range(1, 25)]  # one user, 24 more events
    await produce(test_settings, test_settings.input_topic, records)
    await wait_for_requests(receiver, "/partial", 1, wait_s=20)
    await settle(receiver)
    got = receiver.for_path("/partial")
    items = [item for req in got for item in req.json()]
    assert len(items) == len(records)
    assert all(len(req.json()) <= 10 for req in got)
    steps = [item["data"]["n"] for item in items if item["id"] == "p0"]
    assert steps == list(range(25)), steps
