# ruff: noqa: RUF001 - full-width digits and ideographic dots are the point here
"""The destination guard against real loopback HTTPS servers: hosts that yarl/aiohttp
normalise to a loopback IP never reach the listener, at any redirect hop or token request;
a redirect to another origin carries no credentials; a redirect loop is a retryable failure.

`WebhookClient` runs in the test against real TLS listeners (certificates from a test CA
that covers 127.0.0.1 and 127.0.0.2); the worker tests run `webhooks worker` processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from app.devtools.oauth_server import TokenServer
from app.devtools.receiver import Behaviour, WebhookReceiver
from app.devtools.tls import LocalTLS, make_local_tls
from app.domain.authorizations import parse_authorization
from app.domain.destinations import DestinationRefused
from app.domain.templates import render_url
from app.domain.urls import merge_params
from app.settings import Settings
from app.transport.http import (
    MAX_REDIRECTS,
    InvalidRedirect,
    TooManyRedirects,
    WebhookClient,
)
from app.transport.oauth import TokenError, TokenProvider
from tests.support.jobs import (
    apply_jobs,
    run_cli_async,
    triggers_job,
    wait_for_requests,
    wait_for_state,
)
from tests.support.kafka_io import produce, wait_for_records
from tests.support.processes import WorkerProcess
from tests.support.records import input_record

API_KEY = "ak-Not-For-Other-Origins-7c1d"
CLIENT_SECRET = "cs-Token-Secret-5e6f7a"
BODY = b'{"hello":"world"}'

# Forms of 127.0.0.1 that urlsplit calls a name but yarl/aiohttp connect to as an address.
LOOPBACK_FORMS = [
    "１２７.０.０.１",
    "127。0。0。1",
    "１２７．０．０．１",
    "127｡0｡0｡1",
    "１２７。０。０。１",
]
# Forms that getaddrinfo reads as 127.0.0.1 although they are not canonical.
NUMERIC_FORMS = ["127.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.0.0.1.", "127.000.0.1"]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    """A CA and a server certificate for both loopback addresses used here."""
    return make_local_tls(
        tmp_path_factory.mktemp("guard-tls"), hostnames=("127.0.0.1", "127.0.0.2", "localhost")
    )


@asynccontextmanager
async def listening(tls: LocalTLS, host: str = "127.0.0.1") -> AsyncIterator[WebhookReceiver]:
    rec = WebhookReceiver(tls, host=host)
    await rec.start()
    try:
        yield rec
    finally:
        await rec.stop()


@pytest.fixture
async def first(tls: LocalTLS) -> AsyncIterator[WebhookReceiver]:
    """The listener on 127.0.0.1."""
    async with listening(tls) as rec:
        yield rec


@pytest.fixture
async def other(tls: LocalTLS) -> AsyncIterator[WebhookReceiver]:
    """Another origin: a listener on 127.0.0.2."""
    async with listening(tls, "127.0.0.2") as rec:
        yield rec


@asynccontextmanager
async def webhook_client(
    settings: Settings, tls: LocalTLS, allowed: str
) -> AsyncIterator[WebhookClient]:
    client = WebhookClient(
        settings.model_copy(update={"allowed_private_nets": allowed, "ca_bundle": tls.ca_path})
    )
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def redirect(status: int, location: str) -> Behaviour:
    return Behaviour(respond=lambda n: (status, 0.0, {"Location": location}, b""))


HEADERS = {
    "Content-Type": "application/json",
    "webhook-id": "msg_guard",
    "X-Api-Key": API_KEY,
    "Authorization": f"Bearer {API_KEY}",
    "X-Trace": "t-1",
}


# --- the host as the client connects to it --------------------------------------------


async def test_full_width_and_numeric_hosts_never_reach_the_listener(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver
) -> None:
    async with webhook_client(test_settings, tls, "") as client:
        for host in LOOPBACK_FORMS + NUMERIC_FORMS + ["[::ffff:127.0.0.1]"]:
            with pytest.raises(DestinationRefused):
                await client.send("POST", f"https://{host}:{first.port}/x", BODY, HEADERS)
    assert first.requests == []

    # The same full-width hosts do reach the listener once 127.0.0.0/8 is allowed: the
    # refusal above is the guard's, not a host that could not be reached anyway.
    async with webhook_client(test_settings, tls, "127.0.0.0/8") as client:
        for host in LOOPBACK_FORMS:
            response = await client.send("POST", f"https://{host}:{first.port}/ok", BODY, {})
            assert response.status == 200
    assert len(first.for_path("/ok")) == len(LOOPBACK_FORMS)


async def test_url_template_rendering_a_full_width_host_never_reaches_the_listener(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver
) -> None:
    template = '"https://" + user.data.host + "/users/" + user.id'
    user = {"id": "u1", "data": {"host": f"１２７.０.０.１:{first.port}"}}
    url = merge_params(render_url(template, user, {}), [("api_key", API_KEY)])
    async with webhook_client(test_settings, tls, "") as client:
        with pytest.raises(DestinationRefused) as caught:
            await client.send("POST", url, BODY, HEADERS)
    assert "loopback" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert first.requests == []


@pytest.mark.parametrize(
    "host", ["１２７.０.０.２", "127。0。0。2", "2130706434", "127.0.0.2.", "[::ffff:127.0.0.2]"]
)
async def test_redirect_to_a_normalised_refused_host_is_refused(
    test_settings: Settings,
    tls: LocalTLS,
    first: WebhookReceiver,
    other: WebhookReceiver,
    host: str,
) -> None:
    first.behaviours["/moved"] = redirect(307, f"https://{host}:{other.port}/stolen")
    async with webhook_client(test_settings, tls, "127.0.0.1/32") as client:
        with pytest.raises(DestinationRefused):
            await client.send("POST", first.url("/moved"), BODY, HEADERS)
    assert len(first.for_path("/moved")) == 1
    assert other.requests == []


async def test_full_width_redirect_lands_only_when_its_address_is_allowed(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver, other: WebhookReceiver
) -> None:
    """Control for the test above: the redirect target is a real, reachable listener."""
    first.behaviours["/moved"] = redirect(308, f"https://１２７.０.０.２:{other.port}/landed")
    async with webhook_client(test_settings, tls, "127.0.0.0/8") as client:
        response = await client.send("POST", first.url("/moved"), BODY, {})
    assert response.status == 200
    assert other.for_path("/landed")[0].body == BODY


async def test_token_request_to_a_full_width_host_never_carries_the_secret(
    test_settings: Settings, tls: LocalTLS
) -> None:
    server = TokenServer(tls, client_id="client-1", client_secret=CLIENT_SECRET)
    await server.start()
    try:
        for how in ("basic", "body"):
            auth = parse_authorization(
                {
                    "id": f"oauth-{how}",
                    "label": "oauth",
                    "method": "oauth2_client_credentials",
                    "token_url": f"https://１２７.０.０.１:{server.port}/as/token.oauth2",
                    "client_id": "client-1",
                    "client_secret": CLIENT_SECRET,
                    "token_auth": how,
                }
            )
            async with webhook_client(test_settings, tls, "") as client:
                with pytest.raises(DestinationRefused):
                    await TokenProvider(auth, client).token()
        assert server.calls == []
    finally:
        await server.stop()


# --- redirects to another origin ------------------------------------------------------


async def test_cross_origin_redirect_carries_no_authorization_header_or_param(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver, other: WebhookReceiver
) -> None:
    # The endpoint even echoes our query into its Location.
    echoed = f"?api_key={API_KEY}&keep=1"
    first.behaviours["/in"] = redirect(307, other.url("/landed") + echoed)
    async with webhook_client(test_settings, tls, "127.0.0.0/8") as client:
        # The caller does not say which headers/params are secret: only the request's own
        # descriptive headers and none of its parameters follow.
        await client.send("POST", first.url("/in") + echoed, BODY, HEADERS)
        # The caller names them: exactly those (and Authorization) are dropped.
        await client.send(
            "POST",
            first.url("/in") + echoed,
            BODY,
            HEADERS,
            secret_headers=["X-Api-Key"],
            secret_params=["api_key"],
        )
    sent = first.for_path("/in")
    assert [r.headers["x-api-key"] for r in sent] == [API_KEY, API_KEY]
    assert all(r.query["api_key"] == API_KEY for r in sent)

    unknown, named = other.for_path("/landed")
    for landed in (unknown, named):
        assert landed.method == "POST" and landed.body == BODY
        assert "x-api-key" not in landed.headers
        assert "authorization" not in landed.headers
        assert landed.headers["webhook-id"] == "msg_guard"
        assert landed.headers["content-type"] == "application/json"
        assert API_KEY not in repr(landed)
    assert unknown.query == {} and "x-trace" not in unknown.headers
    assert named.query == {"keep": "1"} and named.headers["x-trace"] == "t-1"


async def test_same_origin_redirect_keeps_the_authorization(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver
) -> None:
    first.behaviours["/in"] = redirect(308, "/landed")
    async with webhook_client(test_settings, tls, "127.0.0.0/8") as client:
        response = await client.send("POST", first.url("/in"), BODY, HEADERS)
    assert response.status == 200
    assert first.for_path("/landed")[0].headers["x-api-key"] == API_KEY


async def test_token_request_redirected_to_another_origin_keeps_its_secret(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver, other: WebhookReceiver
) -> None:
    first.behaviours["/token"] = redirect(307, other.url("/token"))
    for how in ("basic", "body"):
        auth = parse_authorization(
            {
                "id": f"oauth-{how}",
                "label": "oauth",
                "method": "oauth2_client_credentials",
                "token_url": first.url("/token"),
                "client_id": "client-1",
                "client_secret": CLIENT_SECRET,
                "token_auth": how,
            }
        )
        async with webhook_client(test_settings, tls, "127.0.0.0/8") as client:
            with pytest.raises(TokenError) as caught:
                await TokenProvider(auth, client).token()
        assert not caught.value.permanent
        assert CLIENT_SECRET not in str(caught.value)
    # Basic: followed without the Authorization header. Body: not followed at all.
    assert len(first.for_path("/token")) == 2
    followed = other.for_path("/token")
    assert len(followed) == 1
    assert "authorization" not in followed[0].headers
    assert CLIENT_SECRET.encode() not in followed[0].body


# --- loops and broken Locations: retryable failures -----------------------------------


async def test_redirect_loop_is_a_retryable_client_error(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver
) -> None:
    first.behaviours["/loop"] = redirect(307, "/loop")
    first.behaviours["/ping"] = redirect(308, "/pong")
    first.behaviours["/pong"] = redirect(307, "/ping")
    async with webhook_client(test_settings, tls, "127.0.0.0/8") as client:
        for path in ("/loop", "/ping"):
            with pytest.raises(TooManyRedirects) as caught:
                await client.send("POST", first.url(path), BODY, HEADERS)
            assert isinstance(caught.value, aiohttp.ClientError)
            assert not isinstance(caught.value, DestinationRefused)
            assert "too many redirects" in str(caught.value)
    assert len(first.for_path("/loop")) == MAX_REDIRECTS + 1
    assert len(first.for_path("/ping")) + len(first.for_path("/pong")) == MAX_REDIRECTS + 1


async def test_unusable_location_is_a_retryable_client_error(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver
) -> None:
    first.behaviours["/broken"] = redirect(307, "https://[::1/x")
    async with webhook_client(test_settings, tls, "127.0.0.0/8") as client:
        with pytest.raises(InvalidRedirect, match="not a valid URL") as caught:
            await client.send("POST", first.url("/broken"), BODY, HEADERS)
    assert isinstance(caught.value, aiohttp.ClientError)
    assert not isinstance(caught.value, DestinationRefused)


# --- through the worker ---------------------------------------------------------------


def enter(user: str, data: dict[str, Any]) -> tuple[bytes, bytes]:
    return input_record(user, data, ("enter", "newsletter"))


async def test_worker_refuses_full_width_hosts_at_send_time(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    """Applied while 127.0.0.0/8 was allowed; the worker (nothing allowed) still refuses,
    both a literal full-width host and one a URL template renders from profile data."""
    proc = worker_factory(WEBHOOKS_ALLOWED_PRIVATE_NETS="")
    literal = triggers_job(f"https://１２７.０.０.１:{receiver.port}/literal")
    templated = triggers_job("", url_template='"https://" + user.data.host + "/t"')
    del templated["webhook_url"]
    await apply_jobs(test_env, tmp_path, proc, literal, templated)
    await produce(
        test_settings,
        test_settings.input_topic,
        [enter("g1", {"host": f"127。0。0。1:{receiver.port}"})],
    )
    dead = await wait_for_records(test_settings, test_settings.deadletter_topic, 2)
    reasons = {doc["job_id"]: doc["reason"] for _, doc in dead}
    for job in (literal, templated):
        assert "destination refused" in reasons[job["id"]]
        assert "127.0.0.1 is a loopback address" in reasons[job["id"]]
    assert receiver.requests == []


async def test_worker_cross_origin_redirect_drops_the_api_key_and_loops_count_as_errors(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    local_tls: LocalTLS,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    async with listening(local_tls) as elsewhere:  # same host, another port: another origin
        auth = {
            "id": "api-key",
            "label": "api key",
            "method": "headers",
            "headers": f"X-Api-Key: {API_KEY}",
            "params": f"api_key={API_KEY}",
        }
        path = tmp_path / "auth.yaml"
        path.write_text(yaml.safe_dump(auth))
        assert (await run_cli_async(test_env, "auth", "apply", str(path))).code == 0
        receiver.behaviours["/moved"] = redirect(307, elsewhere.url("/landed"))
        receiver.behaviours["/loop"] = redirect(307, "/loop")
        moved = triggers_job(receiver.url("/moved"), authorization="api-key")
        loop = triggers_job(receiver.url("/loop"))
        await apply_jobs(test_env, tmp_path, worker, moved, loop)
        await produce(test_settings, test_settings.input_topic, [enter("x1", {"a": 1})])

        landed = (await wait_for_requests(elsewhere, "/landed", 1))[0]
        assert receiver.for_path("/moved")[0].headers["x-api-key"] == API_KEY
        assert "x-api-key" not in landed.headers
        assert landed.query == {}
        assert API_KEY not in repr(landed)
        assert landed.json()["id"] == "x1"

        # A redirect loop is a failed request: retried, and the job goes to `error`.
        error = await wait_for_state(test_env, loop["id"], "error")
        assert "too many redirects" in error["last_error"]["reason"]
        assert error["counters"]["failed_requests"] >= 10
        assert error["counters"]["omitted_events"] == 0


# --- apply time -----------------------------------------------------------------------


def write_yaml_all(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, allow_unicode=True))
    return path


def job_doc(**fields: Any) -> dict[str, Any]:
    return {"type": "audience_triggers", "label": "j", "audiences": ["newsletter"], **fields}


async def test_jobs_apply_refuses_ip_literal_destinations(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    env = {**test_env, "WEBHOOKS_ALLOWED_PRIVATE_NETS": ""}
    docs = [
        job_doc(webhook_url="https://127.0.0.1:8443/in"),
        job_doc(webhook_url="https://１２７.０.０.１:18443/x"),
        job_doc(webhook_url="https://169.254.169.254/latest/meta-data"),
        job_doc(webhook_url="https://[::1]/in"),
        job_doc(webhook_url="https://0177.0.0.1/in"),
        job_doc(webhook_url="https://10.1.2.3/in"),
        job_doc(url_template='"https://192.168.1.10/users/" + user.id'),
        job_doc(url_template='"https://127。0。0。1/users/" + user.id'),
        job_doc(url_template='"https://" + user.data.host + "/in"'),  # from data: accepted
        job_doc(webhook_url="https://hooks.example.com/in"),  # a name: accepted
    ]
    result = await run_cli_async(env, "jobs", "apply", str(write_yaml_all(tmp_path / "j", docs)))
    assert result.code == 2, result.out + result.err
    for i in range(6):
        assert f"- [{i}].webhook_url: destination refused" in result.err, result.err
    for i in (6, 7):
        assert f"- [{i}].url_template: destination refused" in result.err, result.err
    assert "[8]." not in result.err and "[9]." not in result.err
    assert "metadata" in result.err and "loopback" in result.err and "non-canonical" in result.err
    assert "Traceback" not in result.err

    one = write_yaml_all(tmp_path / "one", [job_doc(webhook_url="https://127.0.0.1:8443/in")])
    refused = await run_cli_async(env, "jobs", "apply", str(one))
    assert refused.code == 2
    assert "- webhook_url: destination refused" in refused.err
    allowed = await run_cli_async(test_env, "jobs", "apply", str(one))  # 127.0.0.0/8 allowed
    assert allowed.code == 0, allowed.err


async def test_auth_apply_refuses_ip_literal_token_urls(
    test_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**test_env, "WEBHOOKS_ALLOWED_PRIVATE_NETS": ""}

    def oauth(auth_id: str, token_url: str) -> dict[str, Any]:
        return {
            "id": auth_id,
            "label": auth_id,
            "method": "oauth2_client_credentials",
            "token_url": token_url,
            "client_id": "c",
            "client_secret": CLIENT_SECRET,
        }

    docs = [
        oauth("loop", "https://127.0.0.1:9443/token"),
        oauth("wide", "https://１２７.０.０.１:9443/token"),
        oauth("meta", "https://169.254.169.254/token"),
        oauth("public", "https://login.example.com/token"),
    ]
    path = write_yaml_all(tmp_path / "a", docs)
    result = await run_cli_async(env, "auth", "apply", str(path))
    assert result.code == 2, result.out + result.err
    for i in range(3):
        assert f"- [{i}].token_url: destination refused" in result.err, result.err
    assert "[3]." not in result.err
    assert CLIENT_SECRET not in result.out + result.err

    # With 127.0.0.0/8 allowed only the metadata address is still refused.
    allowed = await run_cli_async(test_env, "auth", "apply", str(path))
    assert allowed.code == 2
    assert "- [2].token_url: destination refused" in allowed.err
    assert "[0]." not in allowed.err and "[1]." not in allowed.err
    ok = write_yaml_all(tmp_path / "ok", docs[:2])
    assert (await run_cli_async(test_env, "auth", "apply", str(ok))).code == 0


async def test_cookies_an_endpoint_sets_are_never_sent_back(
    test_settings: Settings, tls: LocalTLS, first: WebhookReceiver
) -> None:
    first.behaviours["/cookie"] = Behaviour(
        respond=lambda n: (200, 0.0, {"Set-Cookie": "session=from-endpoint; Path=/"}, b"{}")
    )
    async with webhook_client(test_settings, tls, "127.0.0.0/8") as client:
        # by name: a cookie jar keeps no cookies of IP hosts anyway
        url = first.url("/cookie").replace("127.0.0.1", "localhost")
        for _ in range(2):
            response = await client.send("POST", url, BODY, {"webhook-id": "m"})
            assert response.status == 200
    assert [r.headers.get("cookie") for r in first.for_path("/cookie")] == [None, None]
