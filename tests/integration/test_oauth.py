"""OAuth 2.0 client credentials against a real local HTTPS token endpoint, and secrets that
never appear in plaintext in logs, CLI output or any topic the run wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.devtools.oauth_server import TokenServer
from app.devtools.receiver import Received, WebhookReceiver
from app.devtools.tls import LocalTLS
from app.domain.authorizations import parse_authorization
from app.settings import Settings
from app.transport.http import WebhookClient
from app.transport.kafka import read_to_end
from app.transport.oauth import TokenProvider
from tests.support.jobs import (
    apply_jobs,
    run_cli_async,
    triggers_job,
    wait_for_log,
    wait_for_requests,
    wait_for_state,
)
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import input_record

CLIENT_SECRET = "cs-Very-Secret-9f8e7d"
HEADER_SECRET = "hv-Header-Secret-1a2b3c"


@pytest.fixture
async def token_server(local_tls: LocalTLS) -> AsyncIterator[TokenServer]:
    server = TokenServer(local_tls, client_id="client-1", client_secret=CLIENT_SECRET)
    await server.start()
    yield server
    await server.stop()


async def apply_auth(env: dict[str, str], tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / f"auth-{doc['id']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = await run_cli_async(env, "auth", "apply", str(path))
    assert result.code == 0, result.err
    assert CLIENT_SECRET not in result.out + result.err
    return str(doc["id"])


def oauth(server: TokenServer, auth_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": auth_id,
        "label": auth_id,
        "method": "oauth2_client_credentials",
        "token_url": server.url,
        "client_id": "client-1",
        "client_secret": CLIENT_SECRET,
        **fields,
    }


def enter(user: str) -> tuple[bytes, bytes]:
    return input_record(user, {"x": 1}, ("enter", "newsletter"))


def bearer_valid(server: TokenServer) -> Any:
    def check(req: Received) -> bool:
        value = req.headers.get("authorization", "")
        return value.startswith("Bearer ") and server.valid(value[7:])

    return check


async def test_token_cached_refreshed_at_expiry_and_after_401(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    token_server: TokenServer,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    await apply_auth(
        test_env, tmp_path, oauth(token_server, "idp", scopes="read write", ping_atm_id="atm-7")
    )
    receiver.authorize["/oauth"] = bearer_valid(token_server)
    job = triggers_job(receiver.url("/oauth"), authorization="idp")
    await apply_jobs(test_env, tmp_path, worker, job)

    await produce(test_settings, test_settings.input_topic, [enter(f"a{i}") for i in range(20)])
    first = await wait_for_requests(receiver, "/oauth", 20)
    assert len(token_server.calls) == 1, "20 deliveries share one token"
    assert {r.headers["authorization"] for r in first} == {first[0].headers["authorization"]}
    assert all(r.status == 200 for r in first)
    call = token_server.calls[0]
    assert call.form["scope"] == "read write"
    assert call.form["access_token_manager_id"] == "atm-7"
    assert call.client_auth == "basic"

    token_server.revoke_all()  # the webhook now answers 401 to the cached token
    await produce(test_settings, test_settings.input_topic, [enter("c1")])
    got = await wait_for_requests(receiver, "/oauth", 22)
    assert [r.status for r in got[-2:]] == [401, 200]
    assert got[-2].headers["webhook-id"] == got[-1].headers["webhook-id"]
    assert len(token_server.calls) == 2  # one refresh after the 401, then success


async def test_token_is_refreshed_when_its_lifetime_runs_out(
    test_settings: Settings, token_server: TokenServer
) -> None:
    """The provider's clock is injected: expiry is reached without waiting for it."""
    token_server.expires_in = 600.0
    now = [1_000_000.0]
    auth = parse_authorization(oauth(token_server, "idp"), allowed=test_settings.allowed_networks)
    client = WebhookClient(test_settings)
    await client.start()
    try:
        tokens = TokenProvider(auth, client, clock=lambda: now[0])
        first = await tokens.token()
        assert await tokens.token() == first
        assert len(token_server.calls) == 1  # cached while valid
        now[0] += 600.0  # past its lifetime (and the refresh margin before it)
        second = await tokens.token()
        assert second != first and token_server.valid(second)
        assert len(token_server.calls) == 2
    finally:
        await client.close()


async def test_token_placeholder_in_header_and_param_and_body_client_auth(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    token_server: TokenServer,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    await apply_auth(
        test_env,
        tmp_path,
        oauth(
            token_server,
            "placed",
            headers=f"X-Api-Token: {{token}}\nX-Static: {HEADER_SECRET}",
            params="access_token={token}&team=growth",
            token_auth="body",
        ),
    )
    job = triggers_job(receiver.url("/placed?existing=1"), authorization="placed")
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(test_settings, test_settings.input_topic, [enter("p1")])
    req = (await wait_for_requests(receiver, "/placed", 1))[0]
    token = req.headers["x-api-token"]
    assert token_server.valid(token)
    assert req.query == {"existing": "1", "access_token": token, "team": "growth"}
    assert req.headers["x-static"] == HEADER_SECRET
    assert "authorization" not in req.headers  # {token} was placed: no Bearer header
    assert token_server.calls[0].client_auth == "body"


async def test_wrong_secret_puts_job_in_error_and_no_secret_leaks(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    token_server: TokenServer,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    bad = oauth(token_server, "wrong")
    bad["client_secret"] = "cs-Wrong-Secret-000"
    await apply_auth(test_env, tmp_path, bad)
    await apply_auth(
        test_env,
        tmp_path,
        {
            "id": "hdr",
            "label": "hdr",
            "method": "headers",
            "headers": f"Authorization: {HEADER_SECRET}",
        },
    )
    failing = triggers_job(receiver.url("/wrong"), authorization="wrong")
    static = triggers_job(receiver.url("/static"), authorization="hdr")
    await apply_jobs(test_env, tmp_path, worker, failing, static)
    await produce(test_settings, test_settings.input_topic, [enter("w1")])

    report = await wait_for_state(test_env, failing["id"], "error", wait_s=30)
    reason = report["last_error"]["reason"]
    assert "invalid_client" in reason and "HTTP 401" in reason
    assert (await wait_for_requests(receiver, "/static", 1))[0].headers[
        "authorization"
    ] == HEADER_SECRET
    assert receiver.for_path("/wrong") == []

    secrets = [CLIENT_SECRET, "cs-Wrong-Secret-000", HEADER_SECRET]
    listed = await run_cli_async(test_env, "auth", "list")
    shown = await run_cli_async(test_env, "jobs", "show", failing["id"])
    texts = {"auth list": listed.out + listed.err, "jobs show": shown.out + shown.err}
    texts["worker log"] = worker.log_path.read_text(errors="replace")
    topics = [
        test_settings.jobs_topic,
        test_settings.authorizations_topic,
        test_settings.status_topic,
        test_settings.deadletter_topic,
        test_settings.input_topic,
        f"webhook-queue-{failing['id']}",
        f"webhook-queue-{static['id']}",
    ]
    for topic in topics:
        rows = await read_to_end(test_settings, topic)
        texts[topic] = "\n".join(
            (k or b"").decode(errors="replace") + (v or b"").decode(errors="replace")
            for k, v, _ in rows
        )
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} in plaintext in {where}"


async def test_rotating_an_authorization_takes_effect_without_restart(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    doc = {"id": "rot", "label": "rot", "method": "headers", "headers": "X-Key: old-key-1"}
    await apply_auth(test_env, tmp_path, doc)
    job = triggers_job(receiver.url("/rot"), authorization="rot")
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(test_settings, test_settings.input_topic, [enter("r1")])
    assert (await wait_for_requests(receiver, "/rot", 1))[0].headers["x-key"] == "old-key-1"

    await apply_auth(test_env, tmp_path, {**doc, "headers": "X-Key: new-key-2"})
    await wait_for_log(worker, "authorization rot applied")  # the registry tails the topic
    await produce(test_settings, test_settings.input_topic, [enter("r2")])
    assert (await wait_for_requests(receiver, "/rot", 2))[1].headers["x-key"] == "new-key-2"
