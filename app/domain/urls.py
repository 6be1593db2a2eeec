"""Webhook URLs: authorization parameters merged into the URL's own query, and what a
redirect to another origin may carry.

URLs are parsed with yarl, aiohttp's own URL type, so the URL built here is the URL the
client sends to (one normalisation, see `app.domain.destinations`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from yarl import URL

from app.domain.destinations import parse_url

# Headers that carry credentials whoever added them: never sent to another origin.
ALWAYS_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Headers that may follow a redirect to another origin when the caller does not say which
# of its headers are secret: the request's own description, nothing an authorization adds.
CROSS_ORIGIN_SAFE_HEADERS = frozenset(
    {"accept", "content-type", "user-agent", "webhook-id", "webhook-timestamp"}
)


def merge_params(url: str, params: list[tuple[str, str]]) -> str:
    """`url` with `params` appended to its query (its own parameters kept, values encoded).

    Raises DestinationRefused when `url` is not a URL (a rendered template can make one).
    """
    if not params:
        return url
    return str(parse_url(url).extend_query(params))


def cross_origin_headers(
    headers: Mapping[str, str], secret_names: Collection[str] | None
) -> dict[str, str]:
    """The headers a redirect to another origin may carry, as browsers and `requests` do:
    without Authorization, Cookie and the headers named secret. When `secret_names` is None
    (the caller does not know), only the CROSS_ORIGIN_SAFE_HEADERS are kept."""
    if secret_names is None:
        return {k: v for k, v in headers.items() if k.lower() in CROSS_ORIGIN_SAFE_HEADERS}
    drop = ALWAYS_SECRET_HEADERS | {n.lower() for n in secret_names}
    return {k: v for k, v in headers.items() if k.lower() not in drop}


def cross_origin_url(target: URL, secret_names: Collection[str]) -> URL:
    """`target` (a redirect's Location, on another origin) without the query parameters
    named in `secret_names` (a server may echo our query into its Location)."""
    names = set(secret_names)
    if not names or not any(k in names for k in target.query):
        return target
    return target.with_query([(k, v) for k, v in target.query.items() if k not in names])
