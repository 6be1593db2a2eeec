"""The API's defences against what a held-out probe suite found (issue 20), over real HTTP
against the real broker: the no-token (loopback) mode cannot be driven by another web page
(CSRF with `text/plain` + `Origin` / `Sec-Fetch-Site`, DNS rebinding through `Host`); every
answer carries the anti-framing and no-store headers; hostile bodies (a 1 000-deep array,
tens of thousands of unknown keys, a body past the size cap) get short 422s, never a 500 or
a multi-megabyte answer; padded ids are refused, never stored under another id; an empty
or blank token stops `webhooks api` with one line."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import orjson

from app.api.guards import CONTENT_SECURITY_POLICY
from app.api.responses import MAX_BODY_BYTES
from app.domain.errors import MAX_LISTED_PROBLEMS
from app.settings import Settings
from tests.support.api import ApiClient, job_doc, running_api
from tests.support.processes import run_cli

TOKEN = "test-api-token-" + uuid.uuid4().hex


async def raw(
    method: str, url: str, headers: dict[str, str], data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with exactly these headers (aiohttp adds no Origin of its own)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def test_a_cross_site_page_cannot_stop_a_job_without_a_token(
    test_settings: Settings,
) -> None:
    async with running_api(test_settings, None) as base:
        client = ApiClient(base, None)
        assert (await client.call("PUT", "/v1/jobs/csrf-target", job_doc()))[0] == 201
        stop = f"{base}/v1/jobs/csrf-target/stop"
        form = {"Content-Type": "text/plain"}
        for headers in (
            {**form, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            {**form, "Sec-Fetch-Site": "same-site"},
            {**form, "Origin": "https://evil.example"},  # a browser without Sec-Fetch-*
            {**form, "Origin": "null"},  # a sandboxed frame or a file: page
            {**form, "Origin": base.replace("127.0.0.1", "127.0.0.1.evil.example")},
        ):
            status, _, body = await raw("POST", stop, headers, b"x")
            assert status == 403 and b"cross-site request refused" in body, (headers, body)
        status, report = await client.call("GET", "/v1/jobs/csrf-target")
        assert status == 200 and report["wanted"] == "running"  # nothing reached the topic

        # the dashboard's own requests (same origin) and non-browser clients still work
        same = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
        assert (await raw("POST", stop, same))[0] == 200
        assert (await client.call("GET", "/v1/jobs/csrf-target"))[1]["wanted"] == "stopped"
        assert (await raw("POST", f"{base}/v1/jobs/csrf-target/resume", {"Origin": base}))[0] == 200
        assert (await client.call("POST", "/v1/jobs/csrf-target/stop"))[0] == 200
        assert (await client.call("DELETE", "/v1/jobs/csrf-target"))[0] == 200


async def test_dns_rebinding_gets_no_data_without_a_token(test_settings: Settings) -> None:
    async with running_api(test_settings, None) as base:
        client = ApiClient(base, None)
        assert (await client.call("PUT", "/v1/jobs/rebind-target", job_doc()))[0] == 201
        port = base.rsplit(":", 1)[1]
        for host in (f"rebind.evil.example:{port}", "rebind.evil.example", "10.0.0.1", ""):
            status, _, body = await raw("GET", f"{base}/v1/jobs", {"Host": host})
            assert status == 403 and b"rebind-target" not in body, (host, body)
            assert b"not a loopback name" in body
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", f"127.0.0.2:{port}"):
            status, _, body = await raw("GET", f"{base}/v1/jobs", {"Host": host})
            assert status == 200 and b"rebind-target" in body, host
        assert (await client.call("DELETE", "/v1/jobs/rebind-target"))[0] == 200

    # with a token the Host is not judged (a Service name, an ingress host): the token is
    # what a rebinding page does not have
    async with running_api(test_settings, TOKEN) as base:
        status, _, _ = await raw("GET", f"{base}/v1/jobs", {"Host": "webhooks-api.svc"})
        assert status == 401
        headers = {"Host": "webhooks-api.svc", "Authorization": f"Bearer {TOKEN}"}
        assert (await raw("GET", f"{base}/v1/jobs", headers))[0] == 200


async def test_every_answer_forbids_framing_sniffing_and_caching(
    test_settings: Settings,
) -> None:
    async with running_api(test_settings, TOKEN) as base:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for path, headers in (
            ("/", {}),
            ("/dashboard.js", {}),
            ("/v1/jobs", auth),
            ("/v1/jobs", {}),  # 401
            ("/v1/no-such-route", auth),  # 404 from the router
            ("/v1/openapi.json", {}),
        ):
            _, got, _ = await raw("GET", base + path, headers)
            assert got["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
            assert "frame-ancestors 'none'" in got["Content-Security-Policy"]
            assert got["X-Frame-Options"] == "DENY"
            assert got["X-Content-Type-Options"] == "nosniff"
            assert got["Referrer-Policy"] == "no-referrer"
            assert got["Cache-Control"] == "no-store", path
        status, got, page = await raw("GET", base + "/", {})
        assert status == 200 and got["Content-Type"].startswith("text/html")
        # the page runs under the CSP: no inline script or style for it to block
        assert b"<script src=" in page and b"<script>" not in page and b"<style" not in page


async def test_hostile_bodies_get_short_answers(test_settings: Settings) -> None:
    async with running_api(test_settings, TOKEN) as base:
        client = ApiClient(base, TOKEN)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        deep = b"[" * 1000 + b'"audience_triggers"' + b"]" * 1000  # too deep for orjson.dumps
        doc = orjson.dumps(job_doc(type="@")).replace(b'"@"', deep)
        status, _, answer = await raw("PUT", f"{base}/v1/jobs/deep", auth, doc)
        body = orjson.loads(answer)
        assert status == 422, body
        assert [p["field"] for p in body["problems"]] == ["type"]
        assert len(orjson.dumps(body)) < 2000

        many = job_doc(**{f"unknown_{i}": i for i in range(12_000)})
        status, body = await client.call("PUT", "/v1/jobs/many", many)
        assert status == 422
        assert len(body["problems"]) == MAX_LISTED_PROBLEMS
        assert body["problem_count"] == 12_000
        assert len(orjson.dumps(body)) < 10_000

        huge = orjson.dumps(job_doc(description="x" * MAX_BODY_BYTES))
        status, _, answer = await raw("PUT", f"{base}/v1/jobs/huge", auth, huge)
        assert status == 422 and b"larger than" in answer and len(answer) < 1000
        for job_id in ("deep", "many", "huge"):
            assert (await client.call("GET", f"/v1/jobs/{job_id}"))[0] == 404


async def test_padded_ids_are_refused_not_rewritten(test_settings: Settings) -> None:
    job_id = "padded-" + uuid.uuid4().hex[:8]
    async with running_api(test_settings, TOKEN) as base:
        client = ApiClient(base, TOKEN)
        for path_id in (f"%20{job_id}", f"{job_id}%20", f"{job_id}%0A", f"%09{job_id}"):
            status, body = await client.call("PUT", f"/v1/jobs/{path_id}", job_doc())
            assert status == 422 and body["problems"][0]["field"] == "id", (path_id, body)
            auth = {"label": "a", "method": "none"}
            status, body = await client.call("PUT", f"/v1/authorizations/{path_id}", auth)
            assert status == 422 and body["problems"][0]["field"] == "id", (path_id, body)
        assert (await client.call("GET", f"/v1/jobs/{job_id}"))[0] == 404
        assert (await client.call("GET", f"/v1/authorizations/{job_id}"))[0] == 404


def test_an_empty_or_blank_token_is_an_error_not_no_token(
    test_env: dict[str, str], tmp_path: Path
) -> None:
    blank = tmp_path / "blank-token"
    blank.write_text("\n")
    empty = tmp_path / "empty-token"
    empty.write_text("")
    env = {k: v for k, v in test_env.items() if not k.startswith("WEBHOOKS_API_TOKEN")}
    for extra, named in (
        ({"WEBHOOKS_API_TOKEN": ""}, "WEBHOOKS_API_TOKEN:"),
        ({"WEBHOOKS_API_TOKEN": " \t "}, "WEBHOOKS_API_TOKEN:"),
        ({"WEBHOOKS_API_TOKEN_FILE": str(blank)}, "WEBHOOKS_API_TOKEN_FILE:"),
        ({"WEBHOOKS_API_TOKEN_FILE": str(empty)}, "WEBHOOKS_API_TOKEN_FILE:"),
    ):
        result = run_cli({**env, **extra}, "api", "--host", "0.0.0.0", "--port", "0")
        assert result.code == 2, (extra, result)
        assert named in result.err and "empty or only whitespace" in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1, result.err


def test_jobs_apply_refuses_an_alias_bomb_and_a_padded_id(
    test_env: dict[str, str], tmp_path: Path
) -> None:
    bomb = tmp_path / "bomb.yaml"
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    bomb.write_text("\n".join([*levels, "id: bomb", "type: *l8"]) + "\n")
    result = run_cli(test_env, "jobs", "apply", str(bomb), timeout=30)
    assert result.code == 2 and "aliases expand to more than" in result.err, result
    assert len(result.err.strip().splitlines()) == 1

    padded = tmp_path / "padded.json"
    padded.write_text(orjson.dumps(job_doc(id="padded-id\n")).decode())
    result = run_cli(test_env, "jobs", "apply", str(padded))
    assert result.code == 2 and "id: must be 1-64 of" in result.err, result
    assert "padded-id" not in run_cli(test_env, "jobs", "list").out


async def test_yes_no_inputs_are_strict_and_every_v1_error_is_json(
    test_settings: Settings,
) -> None:
    async with running_api(test_settings, TOKEN) as base:
        client = ApiClient(base, TOKEN)
        assert (await client.call("PUT", "/v1/jobs/strict", job_doc()))[0] == 201
        status, body = await client.call("DELETE", "/v1/jobs/strict?force=maybe")
        assert status == 422 and body["problems"][0]["field"] == "force"
        status, body = await client.call(
            "POST", "/v1/jobs/strict/deadletters/replay", {"ids": ["0-1"], "force": "false"}
        )
        assert status == 422 and body["problems"][0]["field"] == "force"
        status, body = await client.call("GET", "/v1/no-such-thing")
        assert status == 404 and body == {"error": "Not Found"}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, headers, answer = await raw("PATCH", f"{base}/v1/jobs/strict", auth, b"{}")
        assert status == 405 and orjson.loads(answer) == {"error": "Method Not Allowed"}
        assert "PUT" in headers["Allow"]
        assert (await client.call("DELETE", "/v1/jobs/strict?force=TRUE"))[0] == 200
