"""The OpenAPI 3.1 document of the HTTP API, served at /v1/openapi.json. The request bodies'
schemas come from the same pydantic models the use cases validate with; a test checks that
the paths here and the server's routes are the same set."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from app.domain.authorizations import Authorization
from app.domain.jobs import JobConfig

JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    return out


ERRORS = {
    "401": _answer("missing or wrong bearer token", _ref("Error")),
    "403": _answer("a cross-site request, or a Host that is not loopback", _ref("Error")),
    "404": _answer("no such job or authorization", _ref("Error")),
    "422": _answer("invalid input: every wrong field is named", _ref("Error")),
    "503": _answer("the broker cannot be reached, or the secret key is missing", _ref("Error")),
}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


SINCE = _query("since", "a duration back (90s, 10m, 2h, 7d) or an RFC 3339 time")
UNTIL = _query("until", "a duration back or an RFC 3339 time")
LIMIT = _query("limit", "how many of the latest to return", "integer")


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params or [],
        "responses": {**ok, **(extra or {}), **ERRORS},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return op


OBJECT = {"type": "object"}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    conflict = {"409": _answer("refused: the message says why", _ref("Error"))}
    paths: dict[str, Any] = {
        "/v1/jobs": {
            "get": _op(
                "Every job with its state, counters, backlog and last error",
                {"200": _answer("the jobs", OBJECT)},
            ),
        },
        "/v1/jobs/{id}": {
            "get": _op(
                "A job: its configuration (no secrets), state across workers, counters, "
                "backlog, backfill",
                {"200": _answer("the job", OBJECT)},
                params=[ID],
            ),
            "put": _op(
                "Create or replace a job (the same rules as `webhooks jobs apply`); a "
                "signed job's new signing secret is in the answer, once",
                {"200": _answer("replaced", OBJECT), "201": _answer("created", OBJECT)},
                params=[ID],
                body=_ref("JobConfig"),
            ),
            "delete": _op(
                "Delete a job everywhere; refused while its queue holds events unless force",
                {"200": _answer("deleted", OBJECT)},
                params=[ID, _query("force", "true: drop the backlog", "boolean")],
                extra=conflict,
            ),
        },
        "/v1/jobs/{id}/stop": {
            "post": _op(
                "Stop delivery (the backlog is kept)",
                {"200": _answer("stopped", OBJECT)},
                params=[ID],
            ),
        },
        "/v1/jobs/{id}/resume": {
            "post": _op(
                "Resume delivery, backlog first", {"200": _answer("resumed", OBJECT)}, params=[ID]
            ),
        },
        "/v1/jobs/{id}/backfill": {
            "post": _op(
                "Send the job's current audience members as enter events",
                {"202": _answer("requested", OBJECT)},
                params=[ID],
            ),
        },
        "/v1/jobs/{id}/rotate-signing-secret": {
            "post": _op(
                "A new signing secret (in the answer, once); the current one signs "
                "beside it for overlap_hours",
                {"200": _answer("rotated", OBJECT)},
                params=[ID, _query("overlap_hours", "default 24", "integer")],
                extra=conflict,
            ),
        },
        "/v1/jobs/{id}/logs": {
            "get": _op(
                "The job's log, oldest first",
                {"200": _answer("entries", OBJECT)},
                params=[ID, SINCE, LIMIT],
            ),
        },
        "/v1/jobs/{id}/deadletters": {
            "get": _op(
                "The job's dead letters in a time range, oldest first",
                {"200": _answer("dead letters", OBJECT)},
                params=[ID, SINCE, UNTIL, LIMIT],
            ),
        },
        "/v1/jobs/{id}/deadletters/replay": {
            "post": _op(
                "Queue the events of chosen dead letters again (each once unless force)",
                {"202": _answer("queued", OBJECT)},
                params=[ID],
                body=_ref("Replay"),
                extra=conflict,
            ),
        },
        "/v1/authorizations": {
            "get": _op(
                "Every authorization, secrets redacted",
                {"200": _answer("the authorizations", OBJECT)},
            ),
        },
        "/v1/authorizations/{id}": {
            "get": _op(
                "An authorization, secrets redacted", {"200": _answer("it", OBJECT)}, params=[ID]
            ),
            "put": _op(
                "Create or replace an authorization; its secrets are write-only",
                {"200": _answer("replaced", OBJECT), "201": _answer("created", OBJECT)},
                params=[ID],
                body=_ref("Authorization"),
            ),
            "delete": _op(
                "Delete an authorization; refused while a job uses it",
                {"200": _answer("deleted", OBJECT)},
                params=[ID],
                extra=conflict,
            ),
        },
        "/v1/users/{id}/forget": {
            "post": _op(
                "Erase a user: write its tombstone to the input topic (README, Deleting users)",
                {"202": _answer("tombstone written; erasure id", OBJECT)},
                params=[ID],
            ),
        },
        "/v1/users/forget": {
            "post": _op(
                "Erase users (many at once, or ids a path cannot hold)",
                {"202": _answer("tombstones written; erasure ids", OBJECT)},
                body=_ref("UserIds"),
            ),
        },
        "/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _answer("OpenAPI 3.1", OBJECT)},
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "audience-webhooks", "version": "1"},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "JobConfig": JobConfig.model_json_schema(),
                "Authorization": Authorization.model_json_schema(),
                "Replay": {
                    "type": "object",
                    "required": ["ids"],
                    "properties": {
                        "ids": {"type": "array", "items": {"type": "string"}},
                        "force": {"type": "boolean"},
                    },
                },
                "UserIds": {
                    "type": "object",
                    "required": ["ids"],
                    "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "problems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string"},
                                    "rule": {"type": "string"},
                                },
                            },
                        },
                        "problem_count": {
                            "type": "integer",
                            "description": "how many problems there are; `problems` lists "
                            "at most the first 50",
                        },
                    },
                },
            },
        },
    }
