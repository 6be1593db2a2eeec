"""Hostile answers and templates on the real broker and real HTTPS (issue 9, items 5, 6, 10):
a Retry-After of 5 000 digits, a URL template rendering a broken IPv6 host, an enrichment
answer nested 300 levels, a template that runs for seconds. None of them ends a lane or
loops: each ends in a job state or a dead letter with its reason, and the other jobs on the
same worker keep delivering meanwhile."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import apply_jobs, triggers_job, wait_for_requests, wait_for_state
from tests.support.kafka_io import produce, wait_for_dead_letters
from tests.support.processes import WorkerProcess

SLOW_TEMPLATE = (
    'std.foldl(function(a, b) a + b, std.range(1, 40000000), 0) + "" + "https://127.0.0.1/x"'
)


def member(user: str, slug: str, **data: Any) -> tuple[bytes, bytes]:
    doc = {
        "id": user,
        "data": {"email": f"{user}@example.com", **data},
        "segment_events": [{"slug": slug, "event": "enter"}],
    }
    return user.encode(), orjson.dumps(doc)


async def dead_letters_for(settings: Settings, job_id: str, count: int) -> list[Any]:
    letters = await wait_for_dead_letters(settings, lambda _k, d: d.get("job_id") == job_id, count)
    return [doc for _k, doc in letters]


async def test_hostile_answers_and_templates_end_in_states_or_dead_letters(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    long_retry = "9" * 5000
    receiver.behaviours["/sleepy"] = Behaviour(
        respond=lambda n: (503, 0.0, {"Retry-After": long_retry}, b"{}")
    )
    receiver.behaviours["/deep"] = Behaviour(
        respond=lambda n: (200, 0.0, {}, b'{"a":' * 300 + b"1" + b"}" * 300)
    )
    sleepy = triggers_job(receiver.url("/sleepy"), audiences=["sleepy"])
    broken = triggers_job(receiver.url("/unused"), audiences=["broken"])
    del broken["webhook_url"]
    base = receiver.url("")
    broken["url_template"] = (
        f'if user.data.bad then "https://[::1/" + user.id else "{base}/templated/" + user.id'
    )
    slow = triggers_job(receiver.url("/unused"), audiences=["slow"])
    del slow["webhook_url"]
    slow["url_template"] = SLOW_TEMPLATE
    deep: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "type": "user_enrichment",
        "label": "deep answers",
        "audiences": ["deep"],
        "webhook_url": receiver.url("/deep"),
        "export_fields": ["email"],
        "stream": f"enriched-{uuid.uuid4().hex[:8]}",
    }
    healthy = triggers_job(receiver.url("/healthy"), audiences=["healthy"])
    await apply_jobs(test_env, tmp_path, worker, sleepy, broken, slow, deep, healthy)

    await produce(
        test_settings,
        test_settings.input_topic,
        [
            member("s1", "sleepy"),
            member("b1", "broken", bad=True),
            member("b2", "broken", bad=False),
            member("slow1", "slow"),
            member("d1", "deep"),
            *[member(f"h{n}", "healthy") for n in range(5)],
        ],
    )
    await wait_for_requests(receiver, "/healthy", 5, wait_s=60)
    await wait_for_requests(receiver, "/templated/b2", 1, wait_s=60)
    report = await wait_for_state(test_env, sleepy["id"], "sleeping", wait_s=60)
    assert report["next_run"] is not None

    [broken_letter] = await dead_letters_for(test_settings, broken["id"], 1)
    assert "not a valid URL" in broken_letter["reason"], broken_letter
    [slow_letter] = await dead_letters_for(test_settings, slow["id"], 1)
    assert "did not finish within" in slow_letter["reason"], slow_letter
    [deep_letter] = await dead_letters_for(test_settings, deep["id"], 1)
    assert "enrichment answer unusable" in deep_letter["reason"], deep_letter

    log = worker.since_start()
    assert "Traceback" not in log, log[-3000:]
    assert "retrying" not in log or "answers not published" not in log
