"""Templates see only the selected fields (issue 10, item 3): with `export_fields: [email]`,
a body template and a URL template do not see `user.data.ssn` (reading it is a template
error, dead-lettered), and the SSN never
reaches the endpoint; with no fields selected, a triggers job's URL template sees them all."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import apply_jobs, triggers_job, wait_for_requests
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess

SSN = "123-45-6789"


def member(user: str, slug: str) -> tuple[bytes, bytes]:
    doc = {
        "id": user,
        "data": {"email": f"{user}@example.com", "ssn": SSN, "region": "eu"},
        "by_fields": {"email": f"{user}@example.com", "ssn": SSN},
        "segment_events": [{"slug": slug, "event": "enter"}],
    }
    return user.encode(), orjson.dumps(doc)


async def test_templates_see_only_the_selected_fields(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/enrich"] = Behaviour(reply=lambda req: b'{"ok": true}')
    base = receiver.url("")
    enrich = {
        "id": uuid.uuid4().hex,
        "type": "user_enrichment",
        "label": "fields",
        "audiences": ["vip"],
        "url_template": f'"{base}/enrich?ssn=" + std.toString(std.objectHas(user.data, "ssn"))',
        "export_fields": ["email"],
        "body_template": "{ email: user.data.email, fields: std.objectFields(user.data), "
        "by: std.objectFields(user.by_fields) }",
        "stream": f"enriched-{uuid.uuid4().hex[:8]}",
    }
    open_job = triggers_job(receiver.url("/unused"), audiences=["all"])
    del open_job["webhook_url"]
    open_job["url_template"] = f'"{base}/all/" + user.data.region + "/" + user.data.ssn'
    await apply_jobs(test_env, tmp_path, worker, enrich, open_job)
    await produce(
        test_settings, test_settings.input_topic, [member("u1", "vip"), member("u2", "all")]
    )

    [sent] = await wait_for_requests(receiver, "/enrich", 1)
    assert sent.query == {"ssn": "false"}
    assert sent.json() == {"email": "u1@example.com", "fields": ["email"], "by": ["email"]}
    assert SSN not in sent.body.decode()
    # no fields selected: the URL template sees every field
    await wait_for_requests(receiver, f"/all/eu/{SSN}", 1)
