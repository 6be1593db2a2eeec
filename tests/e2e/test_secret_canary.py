"""Canary (issue 9): authorizations with distinctive secrets go through every failure path —
endpoints echoing the request in 500 and 400 answers, a destination refused with the auth
parameters in its URL, a redirect loop, a cross-origin redirect, a token endpoint answering
401 with the form echoed — and then every topic the run wrote, the worker's log and the
output of every CLI command are scanned for every form of every secret: raw, percent-encoded
both ways, JSON-escaped, base64 (of the secret and of `client_id:secret`)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import yaml
from aiokafka import AIOKafkaConsumer

from app.devtools.receiver import Behaviour, Received, WebhookReceiver
from app.devtools.tls import LocalTLS
from app.settings import Settings
from app.transport.kafka import read_to_end
from tests.support.jobs import (
    apply_jobs,
    run_cli_async,
    triggers_job,
    wait_for_requests,
    wait_for_state,
)
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import input_record

KEY_SECRET = "Canary+Key/7f=3a 9Q&x"  # characters every encoding writes differently
PARAM_SECRET = "Canary:Param~é☃ 42"
CLIENT_ID = "canary-client"
CLIENT_SECRET = "Canary#Client?Secret%99"


def forms(secret: str) -> set[str]:
    raw = secret.encode()
    out = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret, safe="").lower(),
        quote_plus(secret).lower(),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    basic = (  # HTTP Basic of client credentials, plain and form-encoded (RFC 6749 2.3.1)
        f"{CLIENT_ID}:{secret}".encode(),
        f"{quote_plus(CLIENT_ID)}:{quote_plus(secret)}".encode(),
    )
    for blob in (raw, *basic):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            text = enc(blob).decode()
            out |= {text, text.rstrip("=")}
    return out


ALL_FORMS = forms(KEY_SECRET) | forms(PARAM_SECRET) | forms(CLIENT_SECRET)


def leaks(text: str) -> set[str]:
    return {f for f in ALL_FORMS if f in text}


def echo(status: int) -> Behaviour:
    """Answer `status` with everything the request carried (headers, query, body)."""

    def reply(req: Received) -> bytes:
        doc = {
            "headers": req.headers,
            "query": req.query,
            "body": req.body.decode(errors="replace"),
        }
        return json.dumps(doc).encode()

    return Behaviour(respond=lambda n: (status, 0.0, {}, b""), reply=reply)


async def all_topics(settings: Settings, tag: str) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        topics = await consumer.topics()
    finally:
        await consumer.stop()
    return sorted(t for t in topics if tag in t or t.startswith(settings.app_id))


async def test_no_form_of_any_secret_leaks_through_any_failure_path(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    local_tls: LocalTLS,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    other = WebhookReceiver(local_tls)  # another port: another origin
    await other.start()
    try:
        await run(test_env, test_settings, receiver, other, worker, tmp_path)
    finally:
        await other.stop()


async def run(
    env: dict[str, str],
    settings: Settings,
    receiver: WebhookReceiver,
    other: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    receiver.behaviours["/echo500"] = echo(500)
    receiver.behaviours["/echo400"] = echo(400)
    receiver.behaviours["/token401"] = echo(401)
    receiver.behaviours["/loop"] = Behaviour(
        respond=lambda n: (307, 0.0, {"Location": receiver.url("/loop")}, b"")
    )
    receiver.behaviours["/away"] = Behaviour(
        respond=lambda n: (307, 0.0, {"Location": other.url("/landed")}, b"")
    )
    static = {
        "id": "canary-static",
        "label": "canary static",
        "method": "headers",
        "headers": f"X-Api-Key: {KEY_SECRET}",
        "params": f"api_key={quote(PARAM_SECRET, safe='')}",
    }
    oauth = {
        "id": "canary-oauth",
        "label": "canary oauth",
        "method": "oauth2_client_credentials",
        "token_url": receiver.url("/token401"),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    outputs: list[str] = []
    for doc in (static, oauth):
        path = tmp_path / f"{doc['id']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        result = await run_cli_async(env, "auth", "apply", str(path))
        assert result.code == 0, result.err
        outputs.append(result.out + result.err)

    def job(path_or_template: str, slug: str, auth: str, **fields: Any) -> dict[str, Any]:
        doc = triggers_job(receiver.url(path_or_template), audiences=[slug], authorization=auth)
        doc.update(fields)
        return doc

    refused = job("/unused", "refused", "canary-static")
    del refused["webhook_url"]
    refused["url_template"] = '"https://" + user.data.host + "/hook"'
    jobs = [
        job("/echo500", "echo500", "canary-static"),
        job("/echo400", "echo400", "canary-static"),
        job("/loop", "loop", "canary-static"),
        job("/away", "away", "canary-static"),
        job("/ok", "oauth", "canary-oauth"),
        refused,
    ]
    await apply_jobs(env, tmp_path, worker, *jobs)
    await produce(
        settings,
        settings.input_topic,
        [
            input_record("u-echo500", {}, ("enter", "echo500")),
            input_record("u-echo400", {}, ("enter", "echo400")),
            input_record("u-loop", {}, ("enter", "loop")),
            input_record("u-away", {}, ("enter", "away")),
            input_record("u-oauth", {}, ("enter", "oauth")),
            input_record("u-refused", {"host": "169.254.169.254"}, ("enter", "refused")),
        ],
    )
    await wait_for_requests(receiver, "/echo400", 1)
    await wait_for_requests(receiver, "/echo500", 3)
    await wait_for_requests(receiver, "/loop", 12)
    await wait_for_requests(receiver, "/token401", 1)
    await wait_for_requests(other, "/landed", 1)
    await wait_for_state(env, jobs[0]["id"], "error", wait_s=90)
    await asyncio.sleep(2.0)  # statuses are written once a second

    # the forms are right: the endpoints did get the secrets (so the scans below can fail)
    sent = receiver.for_path("/echo500")[0]
    assert KEY_SECRET in leaks(json.dumps(sent.headers, ensure_ascii=False))
    assert leaks(sent.headers.get("x-api-key", "") + str(sent.query)) >= {KEY_SECRET}
    token_form = receiver.for_path("/token401")[0]
    assert leaks(token_form.body.decode() + json.dumps(token_form.headers)), "no client secret sent"

    landed = other.for_path("/landed")[0]
    assert leaks(json.dumps({"h": landed.headers, "q": landed.query})) == set(), (
        "a cross-origin redirect carried a secret"
    )

    tag = env["WEBHOOKS_APP_ID"].removeprefix("aw-test-")
    for args in (
        ("auth", "list"),
        ("auth", "show", "canary-static"),
        ("auth", "show", "canary-oauth"),
        ("jobs", "list"),
        *[("jobs", "show", j["id"]) for j in jobs],
    ):
        result = await run_cli_async(env, *args)
        outputs.append(f"$ {' '.join(args)}\n{result.out}{result.err}")
    for text in outputs:
        assert leaks(text) == set(), f"CLI output leaks {leaks(text)}:\n{text[:2000]}"

    log = worker.since_start()
    assert leaks(log) == set(), f"worker log leaks {leaks(log)}"
    scanned = await all_topics(settings, tag)
    assert settings.deadletter_topic in scanned and settings.status_topic in scanned
    for topic in scanned:
        for key, value, _ts in await read_to_end(settings, topic):
            text = (key or b"").decode(errors="replace") + (value or b"").decode(errors="replace")
            assert leaks(text) == set(), f"topic {topic} leaks {leaks(text)}: {text[:500]}"
    # the scan is not vacuous: the dead letters are there and name what happened
    letters = [
        (value or b"").decode()
        for _k, value, _ts in await read_to_end(settings, settings.deadletter_topic)
    ]
    assert any("destination refused" in t for t in letters), letters
    assert any("HTTP 400" in t for t in letters), letters
    shown = "".join(outputs)
    assert "HTTP 500" in shown and "***" in shown, "the echoed error excerpt was not shown"
