"""Erasing a user (issue 22), real broker and HTTPS receivers: a tombstone on the input topic
sends an exit marked deleted per audience to the jobs that send exits, after the events
already queued for the user; the service forgets the user (changelog, snapshots, backfills,
trigger-field baselines), records the erasure by erasure id in the job logs and metrics;
`webhooks users forget` and `POST /v1/users/{id}/forget` take the same path; dead letters of
an erased user are never replayed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from app.devtools.receiver import Behaviour, Received, WebhookReceiver
from app.domain.erasure import ErasureIds
from app.domain.secrets import box_from_settings
from app.domain.state_snapshot import decode
from app.settings import Settings
from app.topic_catalog import erasures_topic, state_changelog_topic
from app.transport.kafka import read_compacted
from tests.support.api import ApiClient, free_port, running_api
from tests.support.jobs import (
    apply_jobs,
    log_entries,
    run_cli_async,
    settle,
    triggers_job,
    wait_for_entry,
    wait_for_requests,
)
from tests.support.kafka_io import produce, wait_for_dead_letters
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import input_record


def rec(user: str, *events: tuple[str, str], **data: Any) -> tuple[bytes, bytes]:
    return input_record(user, {"email": f"{user}@example.com", **data}, *events)


def tombstone(user: str) -> tuple[bytes, None]:
    return user.encode(), None


def of(receiver: WebhookReceiver, path: str, user: str) -> list[dict[str, Any]]:
    bodies = [r.json() for r in receiver.for_path(path)]
    return [b for b in bodies if (b["subject"] if "specversion" in b else b["id"]) == user]


async def erasure_id(env: dict[str, str], user: str) -> str:
    result = await run_cli_async(env, "users", "erasure-id", user)
    assert result.code == 0, result.err
    got, value = result.out.strip().split("\t")
    assert got == user
    return value


async def metric(port: int, line_start: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        text = await answer.text()
    found = [ln for ln in text.splitlines() if ln.startswith(line_start)]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


async def state_keys(settings: Settings) -> dict[bytes, bytes]:
    return await read_compacted(settings, state_changelog_topic(settings))


async def test_a_deleted_user_leaves_every_audience_and_is_forgotten(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    port = free_port()
    worker = worker_factory(WEBHOOKS_HTTP_PORT=str(port))
    # Slow answers keep u1's enter queued while its tombstone is routed.
    receiver.behaviours["/exits"] = Behaviour(respond=lambda n: (200, 0.3, {}, b"{}"))
    exits = triggers_job(receiver.url("/exits"), audiences=["a", "b"])
    enters = triggers_job(receiver.url("/enters"), audiences=["a"], trigger_events="enter")
    events = triggers_job(receiver.url("/ce"), audiences=["b"], cloudevents=True)
    fields = triggers_job(receiver.url("/fields"), audiences=["a"], trigger_fields=["plan"])
    await apply_jobs(test_env, tmp_path, worker, exits, enters, events, fields)

    topic = test_settings.input_topic
    await produce(
        test_settings,
        topic,
        [
            rec("u1", ("enter", "a"), ("enter", "b"), plan="x"),
            rec("u2", ("enter", "a"), plan="x"),
            tombstone("u1"),  # upstream deletes u1 while its enter is still queued
        ],
    )
    await wait_for_requests(receiver, "/exits", 4)
    await wait_for_requests(receiver, "/ce", 2)
    await settle(receiver)

    # Two exits marked deleted, one per audience, after the enter already queued.
    mine = of(receiver, "/exits", "u1")
    assert [b["data"]["segment_events"][0]["event"] for b in mine] == ["enter", "exit", "exit"]
    assert [e["slug"] for e in mine[0]["data"]["segment_events"]] == ["a", "b"]
    for body, slug in zip(mine[1:], ["a", "b"], strict=True):
        assert body["meta"]["reason"] == "deleted"
        (event,) = body["data"]["segment_events"]
        assert event["slug"] == slug and event["id"] == f"seg-{slug}"
        assert event["reason"] == "deleted"
        assert set(body["data"]) == {"segment_events"}, body  # no profile data
    assert "reason" not in mine[0]["meta"]
    assert [b["data"]["segment_events"][0]["event"] for b in of(receiver, "/exits", "u2")] == [
        "enter"
    ]
    # CloudEvents: the exit carries the `reason` extension attribute.
    ce = of(receiver, "/ce", "u1")
    assert [b.get("reason") for b in ce] == [None, "deleted"]
    assert ce[1]["data"]["segment_events"][0]["event"] == "exit"
    # A job that does not send exits gets nothing more.
    assert len(of(receiver, "/enters", "u1")) == 1

    # The job logs name the erasure id, never the user id.
    erased = await erasure_id(test_env, "u1")
    entry = await wait_for_entry(test_env, exits["id"], "erased", erased)
    assert entry["events"] == 2 and entry["audiences"] == ["a", "b"]
    assert entry["erasure_id"] == erased
    for job in (exits, enters, events, fields):
        for item in await log_entries(test_env, job["id"]):
            assert "u1" not in str(item), item
    entry = await wait_for_entry(test_env, enters["id"], "erased", erased)
    assert "no exit sent" in entry["message"]
    assert await metric(port, 'webhooks_users_erased_total{state="known"}') == 1.0
    # exits: 2 (two audiences) + 1 (CloudEvents job) + 1 (trigger-fields job, exits on)
    assert await metric(port, "webhooks_erasure_exits_queued_total") == 4.0

    # The state is gone from the changelog; u2's stays.
    keys = await state_keys(test_settings)
    assert b"u1" not in keys and b"u2" in keys

    # After a restart from snapshots, u1 is still gone: a new plan for u1 is no change of a
    # member (a state that survived would make the trigger-fields job send one)...
    worker.stop()
    snapshots = test_settings.data_dir / "state-snapshots" / state_changelog_topic(test_settings)
    for path in snapshots.iterdir():
        part = int(path.stem)
        snap = decode(
            path.read_bytes(), state_changelog_topic(test_settings), part, path.stat().st_mtime
        )
        assert b"u1" not in snap.entries
    worker = worker_factory(WEBHOOKS_HTTP_PORT=str(port))
    assert "local snapshots of" in worker.since_start()
    before = len(receiver.for_path("/fields"))
    await produce(test_settings, topic, [rec("u1", plan="y"), rec("u2", plan="y")])
    await wait_for_requests(receiver, "/fields", before + 1)
    await settle(receiver)
    changed = [b["id"] for b in (r.json() for r in receiver.for_path("/fields")[before:])]
    assert changed == ["u2"]

    # ... a backfill after the erasure does not send u1 ...
    backfill = triggers_job(receiver.url("/backfill"), audiences=["a", "b"], existing_users=True)
    await apply_jobs(test_env, tmp_path, worker, backfill)
    await wait_for_requests(receiver, "/backfill", 1)
    await settle(receiver)
    assert [r.json()["id"] for r in receiver.for_path("/backfill")] == ["u2"]

    # ... and a new profile for the id is a new user: only its new audience.
    await produce(test_settings, topic, [rec("u1", ("enter", "b"), plan="z")])
    await wait_for_requests(receiver, "/backfill", 2)
    await eventually(
        lambda: state_keys(test_settings),
        lambda view: b"u1" in view,
        wait_s=30,
        what=lambda view: "u1's new state never reached the changelog",
    )
    state = orjson.loads((await state_keys(test_settings))[b"u1"])
    assert state["audiences"] == {"b": "seg-b"}, state


async def test_operators_erase_users_by_command_and_api(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/ops"), audiences=["a"])
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(test_settings, test_settings.input_topic, [rec(u, ("enter", "a")) for u in "xyz"])
    await wait_for_requests(receiver, "/ops", 3)

    result = await run_cli_async(test_env, "users", "forget", "x")
    assert result.code == 0, result.err
    assert "user x: tombstone written to" in result.out
    assert await erasure_id(test_env, "x") in result.out
    async with running_api(test_settings, "t0ken") as base:
        status, answer = await ApiClient(base, "t0ken").call("POST", "/v1/users/y/forget")
        assert status == 202, answer
        assert (
            answer["user_id"] == "y" and answer["tombstone"]["topic"] == test_settings.input_topic
        )
        status, answer = await ApiClient(base, None).call("POST", "/v1/users/z/forget")
        assert status == 401, answer  # the API's token guards it like every route
        status, answer = await ApiClient(base, "t0ken").call(
            "POST", "/v1/users/forget", {"ids": ["ok", "bad\u0000id"]}
        )
        assert status == 422 and "NUL" in str(answer["problems"]), answer
    bad = await run_cli_async(test_env, "users", "forget", "")
    assert bad.code == 2 and "empty" in bad.err, bad

    await wait_for_requests(receiver, "/ops", 5)
    await settle(receiver)
    exited = sorted(
        b["id"]
        for b in (r.json() for r in receiver.for_path("/ops"))
        if b["data"]["segment_events"][0]["event"] == "exit"
    )
    assert exited == ["x", "y"]
    assert all(b.get("meta", {}).get("reason") == "deleted" for b in of(receiver, "/ops", "x")[1:])

    # A member erased while a backfill reads the state is not sent: the erasure record the
    # router writes (here written by hand, as if z's tombstone were being routed) is
    # checked before the backfill writes.
    ids = ErasureIds.from_box(box_from_settings(test_settings), test_settings.app_id)
    racing = (
        ids.record_key("z"),
        orjson.dumps({"erasure_id": ids.erasure_id("z"), "ts": time.time()}),
    )
    await produce(test_settings, erasures_topic(test_settings), [racing])
    backfill = triggers_job(receiver.url("/ops-backfill"), audiences=["a"], existing_users=True)
    await apply_jobs(test_env, tmp_path, worker, backfill)
    done = await wait_for_entry(test_env, backfill["id"], "backfill", "done")
    assert done["members"] == 0, done
    assert "erased meanwhile" in worker.since_start()
    assert receiver.for_path("/ops-backfill") == []


async def test_dead_letters_of_an_erased_user_are_never_replayed(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/refuses"] = Behaviour(respond=lambda n: (400, 0.0, {}, b"no"))
    job = triggers_job(receiver.url("/refuses"), audiences=["a"])
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(
        test_settings,
        test_settings.input_topic,
        [rec("d1", ("enter", "a")), rec("d2", ("enter", "a"))],
    )
    await wait_for_dead_letters(test_settings, lambda k, d: k == job["id"], 2)
    await produce(test_settings, test_settings.input_topic, [tombstone("d1")])
    letters = await wait_for_dead_letters(test_settings, lambda k, d: k == job["id"], 3)
    assert letters[2][1]["event"]["reason"] == "deleted"  # the erasure's exit was refused too

    listed = await run_cli_async(test_env, "deadletters", "list", job["id"], "--json")
    assert listed.code == 0, listed.err
    rows = [orjson.loads(line) for line in listed.out.splitlines()]
    by_user = {(r["event"]["id"], r["event"].get("reason")): r["id"] for r in rows}
    shown = {(r["event"]["id"], r["event"].get("reason")): r["replayable"] for r in rows}
    assert shown == {("d1", None): False, ("d2", None): True, ("d1", "deleted"): True}
    for force in ([], ["--force"]):
        refused = await run_cli_async(
            test_env, "deadletters", "replay", job["id"], by_user[("d1", None)], *force
        )
        assert refused.code == 1, refused
        assert "erased" in refused.err and "never replayed" in refused.err, refused.err
    # Another user's dead letter, and the erasure's own exit (no profile data), replay.
    for ident in (by_user[("d2", None)], by_user[("d1", "deleted")]):
        done = await run_cli_async(test_env, "deadletters", "replay", job["id"], ident)
        assert done.code == 0, done.err
    await eventually(
        lambda: receiver.for_path("/refuses"),
        lambda got: len(got) >= 5,
        wait_s=60,
        what=lambda got: f"replays not delivered: {len(got or [])} requests",
    )
    await settle(receiver)
    bodies: list[Received] = receiver.for_path("/refuses")
    sent = [(r.json()["id"], r.json()["meta"].get("reason")) for r in bodies]
    assert sent.count(("d1", None)) == 1  # never again
