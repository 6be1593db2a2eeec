"""The API's defences, as aiohttp middlewares and a response hook (issue 20).

- **Bearer token** (`WEBHOOKS_API_TOKEN`): every /v1 route but the OpenAPI document needs
  it, compared in constant time. The setting is never empty (settings refuse a blank one).
- **Without a token** the API serves only on a loopback address (`check_can_serve`), and
  answers only requests whose `Host` is a loopback name or address (`localhost`,
  `127.0.0.1`, `[::1]`, any port): a DNS-rebinding page whose name now points at 127.0.0.1
  still sends its own name as `Host` and is refused.
- **Cross-site requests never change state**, token or not: a POST/PUT/DELETE that a
  browser marks `Sec-Fetch-Site: cross-site` or `same-site`, or, from a browser that does
  not send that header, whose `Origin` is not the request's own host, is refused (CSRF: a
  form or `fetch` on another site cannot stop a job, even though in the no-token mode the
  browser needs no credentials to reach it).
- **Security headers on every answer**: a CSP that allows only the API's own scripts and
  styles and no framing (`frame-ancestors 'none'`, plus `X-Frame-Options: DENY` for older
  browsers), `nosniff`, no referrer, and `Cache-Control: no-store` (answers carry job
  configs and, once, signing secrets).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from aiohttp import web

from app.api.responses import Handler, json_response, problem
from app.settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})
OPEN_PATHS = frozenset({"/v1/openapi.json"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_SHOWN_CHARS = 80


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_authority(authority: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of a `Host` header or an origin's authority (`name`, `name:port`,
    `[v6]`, `[v6]:port`), lower-cased; None when it is not that shape."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, rest = authority[1:end], authority[end + 1 :]
    else:
        host, sep, port_text = authority.partition(":")
        rest = sep + port_text
    if not rest:
        return (host, default_port) if host else None
    if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
        return None
    return (host, int(rest[1:])) if host else None


def cross_site_reason(request: web.Request) -> str | None:
    """Why a state-changing request comes from another site, or None when it does not."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        if fetch_site.lower() in SAME_ORIGIN_FETCH:
            return None
        return f"the browser marks it Sec-Fetch-Site: {fetch_site[:_SHOWN_CHARS]}"
    origin = request.headers.get("Origin")
    if origin is None:
        return None  # not from a browser (curl, the CLI, a script)
    scheme, sep, authority = origin.partition("://")
    default = {"http": 80, "https": 443}.get(scheme.lower())
    if sep and default is not None and "/" not in authority:
        theirs = split_authority(authority, default)
        ours = split_authority(request.headers.get("Host", ""), default)
        if theirs is not None and theirs == ours:
            return None
    return f"its Origin {origin[:_SHOWN_CHARS]!r} is not this API"


def guard_middleware(settings: Settings) -> Any:
    """Token, Host and cross-site checks, in that order (see the module docstring)."""
    token = (
        settings.api_token.get_secret_value().encode() if settings.api_token is not None else None
    )

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None:
            host = split_authority(request.headers.get("Host", ""), 0)
            if host is None or not is_loopback(host[0]):
                shown = request.headers.get("Host", "")[:_SHOWN_CHARS]
                return problem(
                    403,
                    f"Host {shown!r} is not a loopback name: without WEBHOOKS_API_TOKEN the "
                    "API answers only requests addressed to localhost, 127.0.0.1 or [::1]",
                )
        if request.method in UNSAFE_METHODS:
            reason = cross_site_reason(request)
            if reason is not None:
                return problem(403, f"cross-site request refused: {reason}")
        if token is not None and request.path.startswith("/v1/") and request.path not in OPEN_PATHS:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token):
                return json_response(
                    {"error": "missing or wrong bearer token"},
                    401,
                    headers={"WWW-Authenticate": 'Bearer realm="audience-webhooks"'},
                )
        return await handler(request)

    return guard


async def add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every answer, errors and 404s included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
