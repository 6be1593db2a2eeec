"""/v1/authorizations: list, get, create/replace, delete (secrets write-only)."""

from __future__ import annotations

from aiohttp import web

from app.api.responses import Handler, document_with_path_id, json_response, settings_of
from app.usecases import authorizations, job_reads


async def list_authorizations(request: web.Request) -> web.Response:
    shown, problems = await authorizations.list_authorizations(settings_of(request))
    return json_response({"authorizations": [s.doc for s in shown], "problems": problems})


async def get_authorization(request: web.Request) -> web.Response:
    shown = await authorizations.show(settings_of(request), request.match_info["id"])
    return json_response(shown.doc | ({"problem": shown.problem} if shown.problem else {}))


async def put_authorization(request: web.Request) -> web.Response:
    doc = await document_with_path_id(request, "authorization")
    settings = settings_of(request)
    existed = doc["id"] in await job_reads.load_compacted(settings, settings.authorizations_topic)
    stored = (await authorizations.apply_documents(settings, [doc]))[0]
    return json_response(
        {"id": stored.id, "method": stored.method, "created": not existed},
        200 if existed else 201,
    )


async def delete_authorization(request: web.Request) -> web.Response:
    auth_id = request.match_info["id"]
    await authorizations.delete(settings_of(request), auth_id)
    return json_response({"deleted": auth_id})


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/authorizations", list_authorizations),
    ("GET", "/v1/authorizations/{id}", get_authorization),
    ("PUT", "/v1/authorizations/{id}", put_authorization),
    ("DELETE", "/v1/authorizations/{id}", delete_authorization),
]
