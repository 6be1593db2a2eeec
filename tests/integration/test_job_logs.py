"""Job logs (issue 10, item 4), as a user reads them: `webhooks jobs logs ID` after omitted
requests, errors and a backfill; `--json`, `--since`, `--follow`; `jobs show` names the
last omission. Real broker, real worker, real HTTPS receiver."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import orjson

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    apply_jobs,
    log_entries,
    run_cli_async,
    triggers_job,
    wait_for_entry,
    wait_for_requests,
)
from tests.support.kafka_io import produce, wait_for_dead_letters
from tests.support.processes import WorkerProcess
from tests.support.records import input_record

BIN = Path(sys.executable).parent


async def test_omitted_requests_errors_and_state_changes_are_in_the_job_log(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/refuses"] = Behaviour(respond=lambda n: (400, 0.0, {}, b"bad field"))
    receiver.behaviours["/down"] = Behaviour(respond=lambda n: (503, 0.0, {}, b"maintenance"))
    refused = triggers_job(receiver.url("/refuses"))
    down = triggers_job(receiver.url("/down"), audiences=["down"])
    await apply_jobs(test_env, tmp_path, worker, refused, down)
    await produce(
        test_settings,
        test_settings.input_topic,
        [
            input_record("u1", {"n": 1}, ("enter", "newsletter")),
            input_record("u2", {"n": 2}, ("enter", "down")),
        ],
    )
    letters = await wait_for_dead_letters(test_settings, lambda k, _doc: k == refused["id"], 1)
    assert "bad field" in letters[0][1]["reason"]  # the answer is kept with the event

    omitted = await wait_for_entry(test_env, refused["id"], "omitted", "HTTP 400")
    assert omitted["status"] == 400
    assert omitted["events"] == 1
    assert len(omitted["event_ids"]) == 1
    # The receiver's answer can echo profile data: the job log keeps it out, and says where
    # it is (the dead letter, `jobs show`).
    assert "bad field" not in str(omitted) and "dead letter" in omitted["reason"]
    started = await wait_for_entry(test_env, refused["id"], "delivery", "delivery started")
    assert started["worker_id"] == test_env["WEBHOOKS_WORKER_ID"]

    # jobs show names the last omission
    shown = await run_cli_async(test_env, "jobs", "show", refused["id"])
    assert shown.code == 0, shown.err
    last = orjson.loads(shown.out)["last_omission"]
    assert last["status"] == 400 and last["events"] == 1 and "HTTP 400" in last["reason"]
    assert "bad field" in last["reason"]

    # 503s: an error entry per failed attempt, then the move to `error` with its reason
    error = await wait_for_entry(test_env, down["id"], "error", "HTTP 503")
    assert error["attempt"] >= 1 and error["retry_in_s"] > 0
    assert "maintenance" not in str(error)
    state = await wait_for_entry(test_env, down["id"], "state", "running -> error", wait_s=90)
    assert state["to"] == "error" and "503" in (state["reason"] or "")
    assert state["next_run"]
    assert "maintenance" not in str(state)

    # the text form: one line per entry, time first
    text = await run_cli_async(test_env, "jobs", "logs", refused["id"])
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert any("omitted" in line and "HTTP 400" in line for line in lines), lines
    assert all(line[:4].isdigit() for line in lines)

    # --since: nothing yet in the future; a bad value is refused naming the option
    assert await log_entries(test_env, refused["id"], "--since", "2999-01-01T00:00:00Z") == []
    bad = await run_cli_async(test_env, "jobs", "logs", refused["id"], "--since", "yesterday")
    assert bad.code == 2 and "--since" in bad.err
    recent = await log_entries(test_env, refused["id"], "--since", "10m")
    assert any(e["kind"] == "omitted" for e in recent)


async def test_follow_prints_new_entries_and_backfills_are_logged(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/bf"))
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(
        test_settings,
        test_settings.input_topic,
        [input_record(f"m{i}", {"n": i}, ("enter", "newsletter")) for i in range(3)],
    )
    await wait_for_requests(receiver, "/bf", 3)

    follow = subprocess.Popen(
        [str(BIN / "webhooks"), "jobs", "logs", job["id"], "--follow", "--json"],
        env={**os.environ, **test_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        result = await run_cli_async(test_env, "jobs", "backfill", job["id"])
        assert result.code == 0, result.err
        done = await wait_for_entry(test_env, job["id"], "backfill", "done")
        assert done["members"] == 3
        await asyncio.sleep(1.5)  # the follower polls every 0.5 s
    finally:
        follow.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            follow.wait(10)
    out, _ = follow.communicate(timeout=10)
    followed = [orjson.loads(line) for line in out.decode().splitlines() if line.strip()]
    kinds = [(e["kind"], e["message"].split()[0]) for e in followed]
    assert ("delivery", "delivery") in kinds  # what was there before it started
    backfills = [e for e in followed if e["kind"] == "backfill"]
    assert [e["message"].split()[2] for e in backfills] == ["started", "done:"]
