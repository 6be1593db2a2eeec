"""`webhooks api`: the use cases over HTTP (JSON, versioned under /v1), the OpenAPI document
at /v1/openapi.json and the dashboard at /.

Every /v1 route but the OpenAPI document needs `Authorization: Bearer <WEBHOOKS_API_TOKEN>`,
compared in constant time. Without a token the API serves only on a loopback address (and
then asks for none). Errors are JSON `{"error": ..., "problems": [{"field", "rule"}]}`:
invalid input 422 naming every field, unknown ids 404, refusals (a job with a backlog, an
authorization in use, a dead letter replayed already) 409, a broker that cannot be reached
503. Secrets never leave: authorizations and jobs are shown redacted, signing secrets only
once, in the answer that created them.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from app.api.openapi import openapi_document
from app.domain.errors import ConfigError, FieldProblem
from app.domain.job_log import parse_since
from app.settings import Settings
from app.transport.kafka import BrokerUnavailable
from app.transport.kafka_security import KafkaSecurityError
from app.usecases import authorizations, deadletters, jobs, logs
from app.usecases.errors import CommandFailed, NotFound
from app.usecases.keys import KeyProblem

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY_BYTES = 1024 * 1024
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)


class ApiRefused(ValueError):
    """The API cannot start as configured (no token on a non-loopback address)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_can_serve(settings: Settings) -> None:
    if settings.api_token is None and not is_loopback(settings.api_host):
        raise ApiRefused(
            f"WEBHOOKS_API_TOKEN is not set: the API serves without a token only on a loopback "
            f"address, not on {settings.api_host} (set a token, or WEBHOOKS_API_HOST=127.0.0.1)"
        )


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def problem(status: int, message: str, problems: list[FieldProblem] | None = None) -> web.Response:
    doc: dict[str, Any] = {"error": message}
    if problems is not None:
        doc["problems"] = [{"field": p.field, "rule": p.rule} for p in problems]
    return json_response(doc, status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except NotFound as exc:
        return problem(404, str(exc).splitlines()[0], exc.problems)
    except ConfigError as exc:
        return problem(422, str(exc).splitlines()[0], exc.problems)
    except CommandFailed as exc:
        return problem(409, str(exc))
    except KeyProblem as exc:
        return problem(503, f"secret key: {exc}")
    except (BrokerUnavailable, KafkaSecurityError) as exc:
        return problem(503, str(exc))
    except Exception:
        log.exception("API request %s %s failed", request.method, request.path)
        return problem(500, "internal error (see the API's log)")


def auth_middleware(settings: Settings) -> Any:
    token = settings.api_token.get_secret_value().encode() if settings.api_token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            token is not None
            and request.path.startswith("/v1/")
            and request.path != ("/v1/openapi.json")
        ):
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token):
                return web.Response(
                    status=401,
                    body=orjson.dumps({"error": "missing or wrong bearer token"}),
                    content_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="audience-webhooks"'},
                )
        return await handler(request)

    return middleware


async def body_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError("request body", [FieldProblem("body", f"not JSON: {exc}")]) from None


async def document_with_path_id(request: web.Request, kind: str) -> dict[str, Any]:
    """The body of a PUT: a JSON object whose id, if it has one, is the path's."""
    doc = await body_json(request)
    path_id = request.match_info["id"]
    if not isinstance(doc, dict):
        raise ConfigError(kind, [FieldProblem("body", "a JSON object")])
    if "id" in doc and doc["id"] != path_id:
        raise ConfigError(kind, [FieldProblem("id", "differs from the id in the path")])
    return {**doc, "id": path_id}


def when(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        return parse_since(value, time.time())
    except ValueError as exc:
        raise ConfigError("query", [FieldProblem(name, str(exc))]) from None


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ConfigError("query", [FieldProblem(name, f"a whole number from {low} to {high}")])
    return int(value)


def settings_of(request: web.Request) -> Settings:
    return request.app[SETTINGS]


# -- jobs ----------------------------------------------------------------------------------


async def list_jobs(request: web.Request) -> web.Response:
    rows = await jobs.list_jobs(settings_of(request), with_backlog=True)
    return json_response({"jobs": [r.to_json_dict() for r in rows]})


async def get_job(request: web.Request) -> web.Response:
    return json_response(await jobs.job_report(settings_of(request), request.match_info["id"]))


async def put_job(request: web.Request) -> web.Response:
    doc = await document_with_path_id(request, "job config")
    applied = (await jobs.apply_documents(settings_of(request), [doc]))[0]
    answer: dict[str, Any] = {
        "id": applied.id,
        "created": applied.created,
        "backfill_requested": applied.backfill_requested,
    }
    if applied.signing_secret is not None:
        answer["signing_secret"] = applied.signing_secret  # shown once
    return json_response(answer, 201 if applied.created else 200)


async def delete_job(request: web.Request) -> web.Response:
    force = request.query.get("force", "") in ("1", "true", "yes")
    steps = await jobs.delete(settings_of(request), request.match_info["id"], force)
    return json_response({"deleted": request.match_info["id"], "steps": steps})


async def stop_job(request: web.Request) -> web.Response:
    message = await jobs.set_desired_state(
        settings_of(request), request.match_info["id"], "stopped"
    )
    return json_response({"message": message})


async def resume_job(request: web.Request) -> web.Response:
    message = await jobs.set_desired_state(
        settings_of(request), request.match_info["id"], "running"
    )
    return json_response({"message": message})


async def backfill_job(request: web.Request) -> web.Response:
    request_id = await jobs.backfill(settings_of(request), request.match_info["id"])
    return json_response({"request_id": request_id}, 202)


async def rotate_signing_secret(request: web.Request) -> web.Response:
    hours = int_query(request, "overlap_hours", 24, 0, 24 * 30)
    rotation = await jobs.rotate_signing_secret(
        settings_of(request), request.match_info["id"], hours * 3600.0
    )
    return json_response(
        {"signing_secret": rotation.secret, "previous_until": rotation.previous_until}
    )


async def job_logs(request: web.Request) -> web.Response:
    found = await logs.recent_entries(
        settings_of(request),
        request.match_info["id"],
        when(request, "since"),
        int_query(request, "limit", 200, 1, logs.MAX_ENTRIES),
    )
    return json_response({"entries": [item.to_json_dict() for item in found]})


# -- dead letters --------------------------------------------------------------------------


async def list_dead_letters(request: web.Request) -> web.Response:
    letters = await deadletters.list_dead_letters(
        settings_of(request),
        request.match_info["id"],
        when(request, "since"),
        when(request, "until"),
        int_query(request, "limit", deadletters.DEFAULT_LIMIT, 1, deadletters.MAX_LIMIT),
    )
    return json_response({"dead_letters": [d.to_json_dict() for d in letters]})


async def replay_dead_letters(request: web.Request) -> web.Response:
    doc = await body_json(request)
    ids = doc.get("ids") if isinstance(doc, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ConfigError("replay", [FieldProblem("ids", "a list of dead-letter ids")])
    force = bool(doc.get("force", False))
    result = await deadletters.replay(
        settings_of(request), request.match_info["id"], ids, force, actor="api"
    )
    return json_response({"replayed": result.replayed, "event_ids": result.event_ids}, 202)


# -- authorizations ------------------------------------------------------------------------


async def list_authorizations(request: web.Request) -> web.Response:
    shown, problems = await authorizations.list_authorizations(settings_of(request))
    return json_response({"authorizations": [s.doc for s in shown], "problems": problems})


async def get_authorization(request: web.Request) -> web.Response:
    shown = await authorizations.show(settings_of(request), request.match_info["id"])
    return json_response(shown.doc | ({"problem": shown.problem} if shown.problem else {}))


async def put_authorization(request: web.Request) -> web.Response:
    doc = await document_with_path_id(request, "authorization")
    settings = settings_of(request)
    existed = doc["id"] in await jobs.load_compacted(settings, settings.authorizations_topic)
    stored = (await authorizations.apply_documents(settings, [doc]))[0]
    return json_response(
        {"id": stored.id, "method": stored.method, "created": not existed},
        200 if existed else 201,
    )


async def delete_authorization(request: web.Request) -> web.Response:
    auth_id = request.match_info["id"]
    await authorizations.delete(settings_of(request), auth_id)
    return json_response({"deleted": auth_id})


# -- documents -----------------------------------------------------------------------------


async def openapi(_request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def dashboard(_request: web.Request) -> web.Response:
    page = resources.files("app.api").joinpath("dashboard.html").read_text()
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})


async def healthz(_request: web.Request) -> web.Response:
    return json_response({"ok": True})


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/jobs", list_jobs),
    ("GET", "/v1/jobs/{id}", get_job),
    ("PUT", "/v1/jobs/{id}", put_job),
    ("DELETE", "/v1/jobs/{id}", delete_job),
    ("POST", "/v1/jobs/{id}/stop", stop_job),
    ("POST", "/v1/jobs/{id}/resume", resume_job),
    ("POST", "/v1/jobs/{id}/backfill", backfill_job),
    ("POST", "/v1/jobs/{id}/rotate-signing-secret", rotate_signing_secret),
    ("GET", "/v1/jobs/{id}/logs", job_logs),
    ("GET", "/v1/jobs/{id}/deadletters", list_dead_letters),
    ("POST", "/v1/jobs/{id}/deadletters/replay", replay_dead_letters),
    ("GET", "/v1/authorizations", list_authorizations),
    ("GET", "/v1/authorizations/{id}", get_authorization),
    ("PUT", "/v1/authorizations/{id}", put_authorization),
    ("DELETE", "/v1/authorizations/{id}", delete_authorization),
    ("GET", "/v1/openapi.json", openapi),
]


def build_app(settings: Settings) -> web.Application:
    check_can_serve(settings)
    app = web.Application(
        middlewares=[auth_middleware(settings), errors_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get("/", dashboard)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(settings: Settings) -> web.AppRunner:
    """Start the API on `api_host:api_port`; the caller keeps the runner and cleans it up."""
    runner = web.AppRunner(build_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    return runner
