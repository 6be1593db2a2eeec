"""/v1/users: erase users (the same path as an upstream tombstone)."""

from __future__ import annotations

from aiohttp import web

from app.api.responses import Handler, body_json, json_response, settings_of
from app.domain.errors import ConfigError, FieldProblem
from app.usecases import users


async def forget_user(request: web.Request) -> web.Response:
    done = await users.forget(settings_of(request), [request.match_info["id"]])
    return json_response(done[0].to_json_dict(), 202)


async def forget_users(request: web.Request) -> web.Response:
    """Many at once, and ids a path segment cannot hold (a `/`)."""
    doc = await body_json(request)
    ids = doc.get("ids") if isinstance(doc, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ConfigError("users", [FieldProblem("ids", "a list of user ids")])
    done = await users.forget(settings_of(request), ids)
    return json_response({"forgotten": [d.to_json_dict() for d in done]}, 202)


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/users/{id}/forget", forget_user),
    ("POST", "/v1/users/forget", forget_users),
]
