"""The HTTP API against the real broker: bearer token, every job and authorization route,
422 naming every wrong field, 404/409, secrets write-only, the OpenAPI document matching
the routes, and the refusal to serve without a token off loopback."""

from __future__ import annotations

import uuid

import orjson
import pytest

from app.api.openapi import openapi_document
from app.api.server import ROUTES, ApiRefused, build_app, check_can_serve
from app.settings import Settings
from tests.support.api import ApiClient, job_doc, running_api
from tests.support.processes import run_cli

TOKEN = "test-api-token-" + uuid.uuid4().hex
SECRET = "s3cr3t-header-value-" + uuid.uuid4().hex


async def test_the_token_is_required_and_compared_exactly(test_settings: Settings) -> None:
    async with running_api(test_settings, TOKEN) as base:
        client = ApiClient(base, TOKEN)
        assert (await client.call("GET", "/v1/jobs", token=None))[0] == 401
        assert (await client.call("GET", "/v1/jobs", token=TOKEN + "x"))[0] == 401
        assert (await client.call("GET", "/v1/jobs", token=TOKEN[:-1]))[0] == 401
        status, body = await client.call("GET", "/v1/jobs")
        assert status == 200 and body == {"jobs": []}
        status, doc = await client.call("GET", "/v1/openapi.json", token=None)
        assert status == 200 and doc["openapi"].startswith("3.1")
        status, _ = await client.call("GET", "/healthz", token=None)
        assert status == 200


def test_the_openapi_document_matches_the_routes(test_settings: Settings) -> None:
    documented = {
        (method.upper(), path)
        for path, ops in openapi_document()["paths"].items()
        for method in ops
    }
    served = {(method, path) for method, path, _ in ROUTES}
    assert documented == served
    app = build_app(test_settings)
    registered = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/v1/")
    }
    assert registered == served


def test_no_token_is_refused_off_loopback(
    test_settings: Settings, test_env: dict[str, str]
) -> None:
    open_settings = test_settings.model_copy(update={"api_token": None, "api_host": "0.0.0.0"})
    with pytest.raises(ApiRefused, match="WEBHOOKS_API_TOKEN is not set"):
        check_can_serve(open_settings)
    env = {k: v for k, v in test_env.items() if k != "WEBHOOKS_API_TOKEN"}
    result = run_cli(env, "api", "--host", "0.0.0.0", "--port", "0")
    assert result.code == 2 and "WEBHOOKS_API_TOKEN is not set" in result.err


async def test_jobs_routes(test_settings: Settings) -> None:
    async with running_api(test_settings, TOKEN) as base:
        client = ApiClient(base, TOKEN)
        status, body = await client.call(
            "PUT",
            "/v1/jobs/bad-job",
            job_doc(webhook_url="http://plain.example.com", audiences=[], batch_size=0),
        )
        assert status == 422
        fields = {p["field"] for p in body["problems"]}
        assert {"webhook_url", "audiences", "batch_size"} <= fields, body
        status, body = await client.call("PUT", "/v1/jobs/bad-job", [1, 2])
        assert status == 422 and body["problems"][0]["field"] == "body"
        status, body = await client.call("PUT", "/v1/jobs/one", job_doc(id="two"))
        assert status == 422 and body["problems"][0]["field"] == "id"

        status, body = await client.call("PUT", "/v1/jobs/api-job", job_doc())
        assert status == 201 and body["created"] is True and "signing_secret" not in body
        status, body = await client.call("PUT", "/v1/jobs/api-job", job_doc(label="renamed"))
        assert status == 200 and body["created"] is False
        status, report = await client.call("GET", "/v1/jobs/api-job")
        assert status == 200 and report["config"]["label"] == "renamed"
        assert report["wanted"] == "running" and report["backlog"] == 0
        status, listed = await client.call("GET", "/v1/jobs")
        assert [j["id"] for j in listed["jobs"]] == ["api-job"]
        assert listed["jobs"][0]["backlog"] == 0 and "counters" in listed["jobs"][0]

        assert (await client.call("POST", "/v1/jobs/api-job/stop"))[0] == 200
        assert (await client.call("GET", "/v1/jobs/api-job"))[1]["wanted"] == "stopped"
        assert (await client.call("POST", "/v1/jobs/api-job/resume"))[0] == 200
        assert (await client.call("GET", "/v1/jobs/api-job"))[1]["wanted"] == "running"
        status, body = await client.call("POST", "/v1/jobs/api-job/backfill")
        assert status == 202 and body["request_id"]
        status, body = await client.call("GET", "/v1/jobs/api-job/logs?since=1h")
        assert status == 200 and isinstance(body["entries"], list)
        status, body = await client.call("GET", "/v1/jobs/api-job/logs?since=yesterday")
        assert status == 422 and body["problems"][0]["field"] == "since"
        status, body = await client.call("GET", "/v1/jobs/api-job/deadletters?limit=5")
        assert status == 200 and body == {"dead_letters": []}
        status, body = await client.call("POST", "/v1/jobs/api-job/deadletters/replay", {"ids": []})
        assert status == 422
        status, body = await client.call("POST", "/v1/jobs/api-job/rotate-signing-secret")
        assert status == 409 and "does not sign" in body["error"]

        for method, path in (
            ("GET", "/v1/jobs/nope"),
            ("POST", "/v1/jobs/nope/stop"),
            ("GET", "/v1/jobs/nope/deadletters"),
            ("DELETE", "/v1/jobs/nope"),
        ):
            status, body = await client.call(method, path)
            assert status == 404 and "no job 'nope'" in body["problems"][0]["rule"], (path, body)

        status, body = await client.call("DELETE", "/v1/jobs/api-job")
        assert status == 200 and body["deleted"] == "api-job"
        assert (await client.call("GET", "/v1/jobs/api-job"))[0] == 404


async def test_signed_job_secret_is_in_the_creating_answer_only(test_settings: Settings) -> None:
    async with running_api(test_settings, TOKEN) as base:
        client = ApiClient(base, TOKEN)
        status, body = await client.call("PUT", "/v1/jobs/signed", job_doc(signed=True))
        assert status == 201 and body["signing_secret"].startswith("whsec_")
        secret = body["signing_secret"]
        status, again = await client.call("PUT", "/v1/jobs/signed", job_doc(signed=True))
        assert status == 200 and "signing_secret" not in again
        status, report = await client.call("GET", "/v1/jobs/signed")
        assert report["signing"]["secrets"] == 1 and secret not in orjson.dumps(report).decode()
        status, rotated = await client.call(
            "POST", "/v1/jobs/signed/rotate-signing-secret?overlap_hours=2"
        )
        assert status == 200 and rotated["signing_secret"] not in (secret, None)
        assert len(rotated["previous_until"]) == 1


async def test_authorization_routes_keep_secrets_write_only(test_settings: Settings) -> None:
    auth = {"label": "crm", "method": "headers", "headers": f"X-Api-Key: {SECRET}"}
    async with running_api(test_settings, TOKEN) as base:
        client = ApiClient(base, TOKEN)
        status, body = await client.call(
            "PUT", "/v1/authorizations/crm", {"label": "", "method": "nope"}
        )
        assert status == 422 and {p["field"] for p in body["problems"]} >= {"method"}
        status, body = await client.call("PUT", "/v1/authorizations/crm", auth)
        assert status == 201 and body == {"id": "crm", "method": "headers", "created": True}
        assert (await client.call("PUT", "/v1/authorizations/crm", auth))[0] == 200
        answers = [
            await client.call("GET", "/v1/authorizations/crm"),
            await client.call("GET", "/v1/authorizations"),
        ]
        for status, doc in answers:
            assert status == 200 and SECRET not in orjson.dumps(doc).decode()
        assert answers[0][1]["headers"] == "X-Api-Key: ***"

        assert (await client.call("PUT", "/v1/jobs/uses-crm", job_doc(authorization="crm")))[
            0
        ] == 201
        status, body = await client.call("DELETE", "/v1/authorizations/crm")
        assert status == 409 and "uses-crm" in body["error"]
        assert (await client.call("DELETE", "/v1/jobs/uses-crm"))[0] == 200
        assert (await client.call("DELETE", "/v1/authorizations/crm"))[0] == 200
        assert (await client.call("GET", "/v1/authorizations/crm"))[0] == 404
        status, body = await client.call(
            "PUT", "/v1/jobs/missing-auth", job_doc(authorization="crm")
        )
        assert status == 422 and body["problems"][0]["field"] == "authorization"
