"""A record the broker refuses as too large (a job's queue topic configured below the
service's limits): that record is dead-lettered with a truncated copy, the records around it
are delivered, and the router's commit reaches the end — no retry loop (issue 9, item 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from app.transport.input_consumer import router_group
from app.transport.kafka_admin import admin_client
from tests.support.jobs import apply_jobs, triggers_job, wait_for_requests
from tests.support.kafka_io import produce, wait_for_commits_at_end, wait_for_dead_letters
from tests.support.processes import WorkerProcess
from tests.support.records import input_record


async def test_record_refused_as_too_large_is_dead_lettered_and_the_rest_delivered(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/small"))
    await apply_jobs(test_env, tmp_path, worker, job)
    async with admin_client(test_settings) as admin:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    f"webhook-queue-{job['id']}",
                    {"max.message.bytes": "4096"},
                )
            ]
        )
    await asyncio.sleep(1.0)  # the topic config reaches the partition leader
    await produce(
        test_settings,
        test_settings.input_topic,
        [
            input_record("before", {"n": 1}, ("enter", "newsletter")),
            input_record("big", {"blob": "b" * 20_000}, ("enter", "newsletter")),
            input_record("after", {"n": 2}, ("enter", "newsletter")),
        ],
    )
    got = await wait_for_requests(receiver, "/small", 2, wait_s=60)
    # The refused batch is written again, so events that shared it may arrive twice, as
    # recognisable duplicates (same webhook-id); the refused one never arrives.
    assert {r.json()["id"] for r in got} == {"after", "before"}
    ids: dict[str, set[str]] = {}
    for r in receiver.for_path("/small"):
        ids.setdefault(r.json()["id"], set()).add(r.headers["webhook-id"])
    assert all(len(v) == 1 for v in ids.values()), ids
    await wait_for_commits_at_end(
        test_settings, test_settings.input_topic, router_group(test_settings), wait_s=60
    )
    letters = [
        doc
        for _k, doc in await wait_for_dead_letters(
            test_settings, lambda _k, d: "refused by the broker" in d["reason"], 1
        )
    ]
    assert len(letters) == 1, letters
    assert letters[0]["event"]["truncated"] is True
    assert letters[0]["event"]["size"] > 20_000
