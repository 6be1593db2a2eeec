"""`webhooks api`: the use cases over HTTP (JSON, versioned under /v1), the OpenAPI document
at /v1/openapi.json and the dashboard at /.

Routes live by resource (`job_routes`, `authorization_routes`, `user_routes`), shared
answers and body reading in `responses`, the defences (bearer token, loopback Host without a token,
cross-site refusal, security headers) in `guards`. Errors are JSON
`{"error": ..., "problems": [{"field", "rule"}], "problem_count": n}`: invalid input 422
naming the wrong fields (the first 50, and how many there are), unknown ids 404, refusals
(a job with a backlog, an authorization in use, a dead letter replayed already) 409, a
cross-site request or a non-loopback Host without a token 403, a broker that cannot be
reached 503. Secrets never leave: authorizations and jobs are shown redacted, signing
secrets only once, in the answer that created them.
"""

from __future__ import annotations

import logging
from importlib import resources

from aiohttp import web

from app.api import authorization_routes, job_routes, user_routes
from app.api.guards import add_security_headers, guard_middleware, is_loopback
from app.api.openapi import openapi_document
from app.api.responses import MAX_BODY_BYTES, SETTINGS, Handler, json_response, problem
from app.domain.errors import ConfigError
from app.settings import Settings
from app.transport.kafka import BrokerUnavailable
from app.transport.kafka_security import KafkaSecurityError
from app.usecases.errors import CommandFailed, NotFound
from app.usecases.keys import KeyProblem

log = logging.getLogger(__name__)

__all__ = ["ROUTES", "ApiRefused", "build_app", "check_can_serve", "is_loopback", "serve"]


class ApiRefused(ValueError):
    """The API cannot start as configured (no token on a non-loopback address)."""


def check_can_serve(settings: Settings) -> None:
    if settings.api_token is None and not is_loopback(settings.api_host):
        raise ApiRefused(
            f"WEBHOOKS_API_TOKEN is not set: the API serves without a token only on a loopback "
            f"address, not on {settings.api_host} (set a token, or WEBHOOKS_API_HOST=127.0.0.1)"
        )


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/v1/"):
            raise
        # an unknown route or method under /v1 answers in the API's error shape too
        answer = problem(exc.status, exc.reason)
        if "Allow" in exc.headers:
            answer.headers["Allow"] = exc.headers["Allow"]
        return answer
    except NotFound as exc:
        return problem(404, str(exc).splitlines()[0], exc.problems)
    except ConfigError as exc:
        return problem(422, str(exc).splitlines()[0], exc.problems, exc.problem_count)
    except CommandFailed as exc:
        return problem(409, str(exc))
    except KeyProblem as exc:
        return problem(503, f"secret key: {exc}")
    except (BrokerUnavailable, KafkaSecurityError) as exc:
        return problem(503, str(exc))
    except Exception:
        log.exception("API request %s %s failed", request.method, request.path)
        return problem(500, "internal error (see the API's log)")


# -- documents -----------------------------------------------------------------------------

PAGE_FILES = {
    "/": ("dashboard.html", "text/html"),
    "/dashboard.js": ("dashboard.js", "text/javascript"),
    "/dashboard.css": ("dashboard.css", "text/css"),
}


async def page(request: web.Request) -> web.Response:
    name, content_type = PAGE_FILES[request.path]
    text = resources.files("app.api").joinpath(name).read_text()
    return web.Response(text=text, content_type=content_type)


async def openapi(_request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def healthz(_request: web.Request) -> web.Response:
    return json_response({"ok": True})


ROUTES: list[tuple[str, str, Handler]] = [
    *job_routes.ROUTES,
    *authorization_routes.ROUTES,
    *user_routes.ROUTES,
    ("GET", "/v1/openapi.json", openapi),
]


def build_app(settings: Settings) -> web.Application:
    check_can_serve(settings)
    app = web.Application(
        middlewares=[guard_middleware(settings), errors_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    for path in PAGE_FILES:
        app.router.add_get(path, page)
    app.router.add_get("/healthz", healthz)
    app.on_response_prepare.append(add_security_headers)
    return app


async def serve(settings: Settings) -> web.AppRunner:
    """Start the API on `api_host:api_port`; the caller keeps the runner and cleans it up."""
    runner = web.AppRunner(build_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    return runner
