"""Field changes of members who were in the audience before the job (issue 10, item 1).

Product doc: "For any user in the exported audience, if any of the selected field values
change, then the user will be sent to the webhook." The user's point of view: members
exist; a job with trigger fields is applied (or its trigger fields edited); the very first
change of a selected field after that is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    apply_jobs,
    run_cli_async,
    settle,
    triggers_job,
    wait_for_log,
    wait_for_requests,
)
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import input_record


def changes(requests: list[Any]) -> list[tuple[str, str, Any]]:
    out = []
    for r in requests:
        body = r.json()
        for ev in body["data"]["segment_events"]:
            out.append((body["id"], ev["event"], body["data"].get("plan")))
    return out


async def members_routed(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
    users: dict[str, dict[str, Any]],
) -> None:
    """`users` enter the audience and the router has routed them (a probe job saw them)."""
    probe = triggers_job(receiver.url("/probe"))
    await apply_jobs(test_env, tmp_path, worker, probe)
    await produce(
        test_settings,
        test_settings.input_topic,
        [input_record(u, data, ("enter", "newsletter")) for u, data in users.items()],
    )
    await wait_for_requests(receiver, "/probe", len(users))


async def test_first_change_of_a_member_who_entered_before_the_job_is_sent(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    users = {"m1": {"plan": "free"}, "m2": {"plan": "free"}}
    await members_routed(test_env, test_settings, receiver, worker, tmp_path, users)

    job = triggers_job(receiver.url("/change"), trigger_fields=["plan"], trigger_events="enter")
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(
        test_settings,
        test_settings.input_topic,
        [
            input_record("m1", {"plan": "pro"}),
            input_record("m1", {"plan": "enterprise"}),
            input_record("m2", {"plan": "free", "city": "Oslo"}),  # not a trigger field
        ],
    )
    await wait_for_requests(receiver, "/change", 2)
    await settle(receiver)
    assert changes(receiver.for_path("/change")) == [
        ("m1", "change", "pro"),
        ("m1", "change", "enterprise"),
    ]
    await wait_for_log(worker, "baselines established for job(s)")


async def test_editing_trigger_fields_sends_the_first_change_of_the_new_field(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/edit"), trigger_fields=["plan"], trigger_events="enter")
    await apply_jobs(test_env, tmp_path, worker, job)
    await members_routed(
        test_env, test_settings, receiver, worker, tmp_path, {"e1": {"plan": "free", "city": "A"}}
    )
    await wait_for_requests(receiver, "/edit", 1)  # its enter

    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump({**job, "trigger_fields": ["city"]}))
    result = await run_cli_async(test_env, "jobs", "apply", str(edited), "--wait")
    assert result.code == 0, result.err
    await produce(
        test_settings,
        test_settings.input_topic,
        [
            input_record("e1", {"plan": "pro", "city": "A"}),  # no longer a trigger field
            input_record("e1", {"plan": "pro", "city": "B"}),  # the first change of city
        ],
    )
    await wait_for_requests(receiver, "/edit", 2)
    await settle(receiver)
    got = receiver.for_path("/edit")
    assert [(r.json()["id"], r.json()["data"]["city"]) for r in got] == [("e1", "A"), ("e1", "B")]
    assert got[1].json()["data"]["segment_events"][0]["event"] == "change"
