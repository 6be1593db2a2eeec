"""What every API handler shares: JSON answers, the error shape, reading a bounded JSON
body and the query parameters, and the settings the app was built with."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from app.domain.errors import ConfigError, FieldProblem
from app.domain.job_log import parse_since
from app.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A job config or an authorization is a few KiB; a body template a few more. 256 KiB leaves
# room and keeps a hostile body from costing the API memory (issue 20).
MAX_BODY_BYTES = 256 * 1024
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)


def json_response(
    doc: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(doc), status=status, content_type="application/json", headers=headers
    )


def problem(
    status: int,
    message: str,
    problems: list[FieldProblem] | None = None,
    problem_count: int | None = None,
) -> web.Response:
    """The error answer: `{"error", "problems": [{"field", "rule"}], "problem_count"}`."""
    doc: dict[str, Any] = {"error": message}
    if problems is not None:
        doc["problems"] = [{"field": p.field, "rule": p.rule} for p in problems]
        doc["problem_count"] = len(problems) if problem_count is None else problem_count
    return json_response(doc, status)


async def body_json(request: web.Request) -> Any:
    """The request's JSON body; ConfigError when it is not JSON, 413 when it is too large."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ConfigError(
            "request body", [FieldProblem("body", f"larger than {MAX_BODY_BYTES // 1024} KiB")]
        ) from None
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


TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("", "0", "false", "no")


def bool_query(request: web.Request, name: str) -> bool:
    """A yes/no query parameter: 1/true/yes or 0/false/no (absent: no); anything else is a
    422, never silently "no" (`?force=TRUE` used to mean no force)."""
    value = request.query.get(name, "").strip().lower()
    if value in TRUE_WORDS or value in FALSE_WORDS:
        return value in TRUE_WORDS
    raise ConfigError("query", [FieldProblem(name, "true or false (also 1/0, yes/no)")])
