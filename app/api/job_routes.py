"""/v1/jobs: list, get, create/replace, delete, stop, resume, backfill, rotate the signing
secret, logs; and the job's dead letters (list, replay)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.api.responses import (
    Handler,
    body_json,
    bool_query,
    document_with_path_id,
    int_query,
    json_response,
    settings_of,
    when,
)
from app.domain.errors import ConfigError, FieldProblem
from app.usecases import deadletters, job_reads, jobs, logs


async def list_jobs(request: web.Request) -> web.Response:
    rows = await job_reads.list_jobs(settings_of(request), with_backlog=True)
    return json_response({"jobs": [r.to_json_dict() for r in rows]})


async def get_job(request: web.Request) -> web.Response:
    return json_response(await job_reads.job_report(settings_of(request), request.match_info["id"]))


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
    force = bool_query(request, "force")
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
    force = doc.get("force", False)
    if not isinstance(force, bool):  # "false" is truthy: never read a string as a yes
        raise ConfigError("replay", [FieldProblem("force", "true or false (a JSON boolean)")])
    result = await deadletters.replay(
        settings_of(request), request.match_info["id"], ids, force, actor="api"
    )
    return json_response({"replayed": result.replayed, "event_ids": result.event_ids}, 202)


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
]
