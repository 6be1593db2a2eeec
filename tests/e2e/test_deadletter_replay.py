"""Dead letters through the CLI: an event the endpoint refused (404, omitted) is listed with
its reason; replayed, it is delivered exactly once with the webhook-id of its first attempt;
a second replay of it is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    apply_jobs,
    run_cli_async,
    settle,
    triggers_job,
    wait_for_requests,
)
from tests.support.kafka_io import produce
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import toggle


async def test_an_omitted_event_is_listed_and_replayed_exactly_once(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = worker_factory()
    refusing = {"on": True}
    receiver.behaviours["/dl"] = Behaviour(
        respond=lambda n: (
            (404, 0.0, {}, b'{"error":"no such user"}') if refusing["on"] else (200, 0.0, {}, b"{}")
        )
    )
    job = triggers_job(receiver.url("/dl"))
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(test_settings, test_settings.input_topic, [toggle("d1", 0), toggle("d2", 0)])
    first = await wait_for_requests(receiver, "/dl", 2)
    assert all(r.status == 404 for r in first)

    async def listed() -> list[dict[str, object]]:
        result = await run_cli_async(test_env, "deadletters", "list", job["id"], "--json")
        assert result.code == 0, result.err
        return [orjson.loads(line) for line in result.out.splitlines()]

    letters = await eventually(listed, lambda ls: len(ls) == 2, wait_s=30)
    assert all(d["replayable"] and d["status"] == 404 for d in letters)
    assert all("404" in str(d["reason"]) for d in letters)
    text = await run_cli_async(test_env, "deadletters", "list", job["id"], "--since", "1h")
    assert text.code == 0 and len(text.out.splitlines()) == 2
    future = await run_cli_async(test_env, "deadletters", "list", job["id"], "--until", "1h")
    assert future.code == 0 and future.out == ""  # nothing written before an hour ago

    d1 = next(d for d in letters if d["event"]["id"] == "d1")  # type: ignore[index]
    refusing["on"] = False
    replayed = await run_cli_async(test_env, "deadletters", "replay", job["id"], str(d1["id"]))
    assert replayed.code == 0, replayed.err
    got = await wait_for_requests(receiver, "/dl", 3)
    await settle(receiver, 2.0)
    delivered = [r for r in receiver.for_path("/dl") if r.status == 200]
    assert len(delivered) == 1 and delivered[0].json()["id"] == "d1"
    original = next(r for r in got[:2] if r.json()["id"] == "d1")
    assert delivered[0].headers["webhook-id"] == original.headers["webhook-id"]

    again = await run_cli_async(test_env, "deadletters", "replay", job["id"], str(d1["id"]))
    assert again.code == 1 and "replayed already" in again.err
    unknown = await run_cli_async(test_env, "deadletters", "replay", job["id"], "0-999999", "x")
    assert unknown.code == 2
    assert "no dead letter 0-999999" in unknown.err and "'x' is not a dead-letter id" in unknown.err
    await asyncio.sleep(1)
    assert len([r for r in receiver.for_path("/dl") if r.status == 200]) == 1
    logs = await run_cli_async(test_env, "jobs", "logs", job["id"])
    assert "replay" in logs.out and str(d1["id"]) in logs.out
