"""What templates see (issue 10, item 3; product doc): a URL template generates "a dynamic
URL using data on the profile or the job configuration", so it sees the whole profile,
selected fields or not; a body template is created "using the template with the user's
fields selected during configuration", so with `export_fields: [email]` it sees only the
email and the SSN never reaches the body. A body template that reads an unselected field is
refused when applied (`jobs apply` exits 2, `PUT /v1/jobs/{id}` answers 422), naming it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.api import ApiClient, running_api
from tests.support.jobs import apply_jobs, run_cli_async, triggers_job, wait_for_requests
from tests.support.kafka_io import produce, wait_for_records
from tests.support.processes import WorkerProcess

SSN = "123-45-6789"
TOKEN = "test-api-token-" + uuid.uuid4().hex


def member(user: str, slug: str) -> tuple[bytes, bytes]:
    doc = {
        "id": user,
        "data": {"email": f"{user}@example.com", "ssn": SSN, "region": "eu", "account": "acme-42"},
        "by_fields": {"email": f"{user}@example.com", "ssn": SSN},
        "segment_events": [{"slug": slug, "event": "enter"}],
    }
    return user.encode(), orjson.dumps(doc)


def enrichment_job(**fields: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "type": "user_enrichment",
        "label": "fields",
        "audiences": ["vip"],
        "export_fields": ["email"],
        "stream": f"enriched-{uuid.uuid4().hex[:8]}",
        **fields,
    }


async def test_url_templates_see_the_profile_body_templates_the_selected_fields(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/enrich"] = Behaviour(reply=lambda req: b'{"ok": true}')
    base = receiver.url("")
    enrich = enrichment_job(
        url_template=f'"{base}/enrich?ssn=" + std.toString(std.objectHas(user.data, "ssn"))',
        body_template="{ email: user.data.email, fields: std.objectFields(user.data), "
        "by: std.objectFields(user.by_fields) }",
    )
    open_job = triggers_job(receiver.url("/unused"), audiences=["all"])
    del open_job["webhook_url"]
    open_job["url_template"] = f'"{base}/all/" + user.data.region + "/" + user.data.ssn'
    await apply_jobs(test_env, tmp_path, worker, enrich, open_job)
    await produce(
        test_settings, test_settings.input_topic, [member("u1", "vip"), member("u2", "all")]
    )

    [sent] = await wait_for_requests(receiver, "/enrich", 1)
    assert sent.query == {"ssn": "true"}  # the URL template sees the unselected field
    assert sent.json() == {"email": "u1@example.com", "fields": ["email"], "by": ["email"]}
    assert SSN not in sent.body.decode()
    # no fields selected: the URL template sees every field as well
    await wait_for_requests(receiver, f"/all/eu/{SSN}", 1)


async def test_an_enrichment_url_template_reads_an_unselected_field(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/crm/acme-42"] = Behaviour(reply=lambda req: b'{"tier": "gold"}')
    crm = enrichment_job(url_template=f"'{receiver.url('/crm/')}' + user.data.account")
    await apply_jobs(test_env, tmp_path, worker, crm)
    await produce(test_settings, test_settings.input_topic, [member("c1", "vip")])

    [sent] = await wait_for_requests(receiver, "/crm/acme-42", 1)
    assert sent.json() == {"email": "c1@example.com"}  # the body: the export fields only
    [(key, doc)] = await wait_for_records(test_settings, crm["stream"], 1)
    assert key == "c1"
    assert doc["response"] == {"tier": "gold"}
    assert doc["origin"]["email"] == "c1@example.com"


async def test_a_body_template_reading_an_unselected_field_is_refused(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    rule = "reads user.data.ssn, which is not in export_fields (selected: email)"
    doc = enrichment_job(
        webhook_url="https://crm.example.com/enrich",
        body_template="{ email: user.data.email, ssn: user.data.ssn }",
    )
    path = tmp_path / "bad-body.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = await run_cli_async(test_env, "jobs", "apply", str(path))
    assert result.code == 2, result.out + result.err
    assert f"- body_template: {rule}" in result.err, result.err

    async with running_api(test_settings, TOKEN) as base:
        status, body = await ApiClient(base, TOKEN).call("PUT", f"/v1/jobs/{doc['id']}", doc)
    assert status == 422, body
    assert body["problems"] == [{"field": "body_template", "rule": rule}]
