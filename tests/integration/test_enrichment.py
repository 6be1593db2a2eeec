"""User Enrichment jobs end to end: the body (export fields or a Jsonnet template), answers
published to the job's stream as {origin, response}, unusable answers dead-lettered."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

from app.devtools.receiver import Behaviour, Received, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import apply_jobs, wait_for_requests
from tests.support.kafka_io import produce, wait_for_records
from tests.support.processes import WorkerProcess


def enrichment_job(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "type": "user_enrichment",
        "label": "enrich",
        "audiences": ["newsletter"],
        "webhook_url": url,
        "export_fields": ["email"],
        "stream": f"enriched-{uuid.uuid4().hex[:8]}",
        **fields,
    }


def member(user: str, kind: str = "enter") -> tuple[bytes, bytes]:
    doc = {
        "id": user,
        "data": {"email": f"{user}@example.com", "city": "Oslo"},
        "by_fields": {"email": f"{user}@example.com", "user_id": user},
        "segment_events": [{"slug": "newsletter", "event": kind}],
    }
    return user.encode(), orjson.dumps(doc)


def echo_each(req: Received) -> bytes:
    body = req.json()
    items = body if isinstance(body, list) else [body]
    answers = [{"name": f"enriched {item['email']}", "interests": ["reading"]} for item in items]
    return orjson.dumps(answers if isinstance(body, list) else answers[0])


async def test_enrichment_publishes_origin_and_response(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/enrich"] = Behaviour(reply=echo_each)
    receiver.behaviours["/enrich-batch"] = Behaviour(reply=echo_each)
    single = enrichment_job(receiver.url("/enrich"))
    batched = enrichment_job(
        receiver.url("/enrich-batch"),
        batch=True,
        batch_size=3,
        worker_count=1,
        body_template="{ email: user.data.email, from_job: job.label }",
    )
    await apply_jobs(test_env, tmp_path, worker, single, batched)
    await produce(
        test_settings,
        test_settings.input_topic,
        [member("e1"), member("e2"), member("e3"), member("e1", "exit")],
    )

    sent = await wait_for_requests(receiver, "/enrich", 4)
    assert all(set(r.json()) == {"email"} for r in sent)  # only the export fields
    out = await wait_for_records(test_settings, single["stream"], 4)
    by_user = {key: doc for key, doc in out}
    assert by_user["e2"] == {
        "origin": {"email": "e2@example.com", "user_id": "e2"},
        "response": {"name": "enriched e2@example.com", "interests": ["reading"]},
    }

    batches = await wait_for_requests(receiver, "/enrich-batch", 2)
    assert [len(b.json()) for b in batches] == [3, 1]
    first = batches[0].json()
    assert {"email": "e1@example.com", "from_job": "enrich"} in first + batches[1].json()
    out = await wait_for_records(test_settings, batched["stream"], 4)
    for key, doc in out:
        assert doc["response"]["name"] == f"enriched {key}@example.com"  # paired by position
        assert doc["origin"]["user_id"] == key


async def test_unusable_answers_are_dead_letters(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/not-json"] = Behaviour(reply=lambda req: b"<html>ok</html>")
    receiver.behaviours["/short"] = Behaviour(reply=lambda req: b"[{}]")
    receiver.behaviours["/huge"] = Behaviour(
        reply=lambda req: b'"' + b"x" * (1024 * 1024 + 10) + b'"'
    )
    not_json = enrichment_job(receiver.url("/not-json"))
    short = enrichment_job(receiver.url("/short"), batch=True, batch_size=2, worker_count=1)
    huge = enrichment_job(receiver.url("/huge"))
    await apply_jobs(test_env, tmp_path, worker, not_json, short, huge)
    await produce(test_settings, test_settings.input_topic, [member("d1"), member("d2")])

    dead = await wait_for_records(test_settings, test_settings.deadletter_topic, 6)
    reasons: dict[str, list[str]] = {}
    for key, doc in dead:
        assert key == doc["job_id"]
        reasons.setdefault(doc["job_id"], []).append(doc["reason"])
    assert all("answer is not JSON" in r for r in reasons[not_json["id"]])
    assert (
        reasons[short["id"]]
        == ["enrichment answer unusable: batched answer has 1 items for 2 users"] * 2
    )
    assert all("larger than 1048576 bytes" in r for r in reasons[huge["id"]])
    assert {doc["event"]["id"] for _, doc in dead} == {"d1", "d2"}
