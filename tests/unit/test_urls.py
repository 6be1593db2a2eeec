"""Authorization parameters merged into a webhook URL's query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from app.domain.urls import merge_params


def test_no_params_returns_url_unchanged() -> None:
    url = "https://hooks.example.com/in?a=1&b=%20x"
    assert merge_params(url, []) == url


def test_keeps_own_query_and_appends_params() -> None:
    merged = merge_params("https://hooks.example.com/in?a=1", [("token", "t0k")])
    parts = urlsplit(merged)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "hooks.example.com", "/in")
    assert parse_qsl(parts.query) == [("a", "1"), ("token", "t0k")]


def test_encodes_values() -> None:
    merged = merge_params("https://hooks.example.com/in", [("key", "a b&c=d")])
    query = urlsplit(merged).query
    assert " " not in query and query.count("&") == 0 and query.count("=") == 1
    assert parse_qsl(query) == [("key", "a b&c=d")]
