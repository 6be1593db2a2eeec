"""Webhook URLs: authorization parameters merged into the URL's own query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def merge_params(url: str, params: list[tuple[str, str]]) -> str:
    """`url` with `params` appended to its query (its own parameters kept, values encoded)."""
    if not params:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params)
    return urlunsplit(parts._replace(query=urlencode(query)))
