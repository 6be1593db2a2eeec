"""Async helpers for tests that run a worker: apply jobs, wait for delivery, wait for requests."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.devtools.receiver import Received, WebhookReceiver
from tests.support.broker import ROOT
from tests.support.polling import eventually
from tests.support.processes import WEBHOOKS, CliResult, WorkerProcess


async def run_cli_async(env: dict[str, str], *args: str) -> CliResult:
    """The CLI without blocking the event loop (the receiver lives on it)."""
    proc = await asyncio.create_subprocess_exec(
        WEBHOOKS,
        *args,
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return CliResult(proc.returncode or 0, out.decode(), err.decode())


def triggers_job(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "type": "audience_triggers",
        "label": "test job",
        "audiences": ["newsletter"],
        "webhook_url": url,
        **fields,
    }


def triggers_job_in_slot(slot: int, url: str, **fields: Any) -> dict[str, Any]:
    """A triggers job whose id falls in delivery slot `slot` (`app/domain/slots.py`), so a
    test can place jobs on different worker processes."""
    from app.domain.slots import slot_of

    while True:
        job = triggers_job(url, **fields)
        if slot_of(job["id"]) == slot:
            return job


# Slots that two workers never hold all of alone, whether they joined one after the other
# (the first keeps 0-31, the second gets 32-63) or together (the slots alternate).
SPREAD_SLOTS = (0, 1, 62, 63)


def slots_held(worker: WorkerProcess) -> int:
    """How many delivery slots the worker said it holds last (0 before its first share)."""
    held = re.findall(r"delivery slots: .*\(holding (\d+)\)", worker.since_start())
    return int(held[-1]) if held else 0


async def wait_for_slots_shared(*workers: WorkerProcess, wait_s: float = 60.0) -> None:
    """Until the workers hold every delivery slot between them, each some: the jobs applied
    after this spread over them (see SPREAD_SLOTS)."""
    await eventually(
        lambda: [slots_held(w) for w in workers],
        lambda held: sum(held) == 64 and all(held),
        wait_s=wait_s,
        what=lambda held: f"delivery slots never shared out: {held}",
    )


async def apply_jobs(
    env: dict[str, str], tmp_path: Path, worker: WorkerProcess, *jobs: dict[str, Any]
) -> None:
    """Apply `jobs` and wait until the worker delivers for each of them."""
    path = tmp_path / f"jobs-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(list(jobs)))
    result = await run_cli_async(env, "jobs", "apply", str(path))
    assert result.code == 0, result.err
    for job in jobs:
        await wait_for_log(worker, f"delivery started for job {job['id']}")


async def apply_jobs_wait(env: dict[str, str], tmp_path: Path, *jobs: dict[str, Any]) -> None:
    """Apply `jobs` and wait (`--wait`) until the worker holding each runs it."""
    path = tmp_path / f"jobs-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(list(jobs)))
    result = await run_cli_async(env, "jobs", "apply", str(path), "--wait")
    assert result.code == 0, result.err


async def wait_for_log(worker: WorkerProcess, line: str, wait_s: float = 60.0) -> None:
    await eventually(
        lambda: worker.log_path.read_text(errors="replace"),
        lambda text: line in text,
        wait_s=wait_s,
        interval_s=0.1,
        what=lambda _: f"worker never logged {line!r}:\n{worker.tail()}",
    )


async def wait_for_requests(
    receiver: WebhookReceiver, path: str, count: int, wait_s: float = 30.0
) -> list[Received]:
    return await eventually(
        lambda: receiver.for_path(path),
        lambda got: len(got) >= count,
        wait_s=wait_s,
        interval_s=0.05,
        what=lambda got: f"{path}: expected {count} requests, got {len(got or [])}",
    )


async def settle(receiver: WebhookReceiver, quiet_s: float = 2.0) -> None:
    """Wait until no request has arrived for `quiet_s` (to check nothing more comes)."""
    while True:
        last = receiver.requests[-1].at if receiver.requests else 0.0
        await asyncio.sleep(quiet_s)
        if (receiver.requests[-1].at if receiver.requests else 0.0) == last:
            return


async def job_status(env: dict[str, str], job_id: str) -> dict[str, Any]:
    result = await run_cli_async(env, "jobs", "show", job_id)
    assert result.code == 0, result.err
    doc: dict[str, Any] = orjson.loads(result.out)
    return doc


async def wait_for_state(
    env: dict[str, str], job_id: str, state: str, wait_s: float = 60.0
) -> dict[str, Any]:
    """Poll `webhooks jobs show` until the job reports `state`; return that report."""
    return await eventually(
        lambda: job_status(env, job_id),
        lambda doc: doc["state"] == state,
        wait_s=wait_s,
        interval_s=0.3,
        what=lambda doc: f"job {job_id} never reached {state!r}; last report: {doc}",
    )


async def wait_for_counter(
    env: dict[str, str], job_id: str, counter: str, at_least: int, wait_s: float = 30.0
) -> dict[str, Any]:
    """Poll `webhooks jobs show` until the job's `counter` reaches `at_least`; return that
    report. Counters reach the status topic after the request they count, so a test that
    saw a request at the receiver must wait for them rather than read them once."""
    return await eventually(
        lambda: job_status(env, job_id),
        lambda doc: doc["counters"][counter] >= at_least,
        wait_s=wait_s,
        interval_s=0.3,
        what=lambda doc: f"job {job_id}: {counter} never reached {at_least}; last report: {doc}",
    )


async def wait_for_delivered(
    receiver: WebhookReceiver,
    path: str,
    key: Callable[[Received], Any],
    count: int,
    wait_s: float = 60.0,
) -> set[Any]:
    """Poll until `count` distinct keys were answered 2xx on `path`; return the keys seen
    (fewer on timeout: the caller's assertion says what is missing)."""

    def delivered() -> set[Any]:
        return {key(r) for r in receiver.for_path(path) if r.status < 300}

    try:
        return await eventually(delivered, lambda seen: len(seen) >= count, wait_s=wait_s)
    except AssertionError:
        return delivered()


async def log_entries(env: dict[str, str], job_id: str, *args: str) -> list[dict[str, Any]]:
    """The job's log (`webhooks jobs logs ID --json`), oldest first."""
    result = await run_cli_async(env, "jobs", "logs", job_id, "--json", *args)
    assert result.code == 0, result.err
    return [orjson.loads(line) for line in result.out.splitlines() if line.strip()]


async def wait_for_entry(
    env: dict[str, str], job_id: str, kind: str, text: str, wait_s: float = 60.0
) -> dict[str, Any]:
    """Until the job's log has a `kind` entry whose message contains `text`; that entry.
    (A state that lasts a moment is seen here even when a poll of `jobs show` misses it.)"""

    def match(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        return next((e for e in entries if e["kind"] == kind and text in e["message"]), None)

    entries = await eventually(
        lambda: log_entries(env, job_id),
        lambda entries: match(entries) is not None,
        wait_s=wait_s,
        interval_s=0.5,
        what=lambda entries: f"no {kind} entry with {text!r} in the job log: {entries}",
    )
    found = match(entries)
    assert found is not None
    return found
