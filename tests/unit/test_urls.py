"""Authorization parameters merged into a webhook URL's query."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from yarl import URL

from app.domain.destinations import DestinationRefused
from app.domain.urls import cross_origin_headers, cross_origin_url, merge_params


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


def test_keeps_encoded_own_query_and_encodes_reserved_characters() -> None:
    merged = merge_params("https://hooks.example.com/in?a=1&b=%20x", [("p", "+%/?&=")])
    assert parse_qsl(urlsplit(merged).query) == [("a", "1"), ("b", " x"), ("p", "+%/?&=")]


def test_an_unusable_url_is_a_refused_destination_not_a_crash() -> None:
    with pytest.raises(DestinationRefused, match="not a valid URL"):
        merge_params("https://[::1/x", [("k", "v")])


def test_merged_url_is_the_url_the_client_uses() -> None:
    merged = merge_params("https://１２７.０.０.１:8443/in", [("k", "v")])  # noqa: RUF001
    assert URL(merged).raw_host == "127.0.0.1"


HEADERS = {
    "Content-Type": "application/json",
    "webhook-id": "msg_1",
    "webhook-timestamp": "1",
    "Authorization": "Bearer t",
    "X-Api-Key": "k",
    "Cookie": "c=1",
    "X-Other": "o",
}


def test_cross_origin_headers_unknown_secrets_keep_only_the_safe_ones() -> None:
    assert set(cross_origin_headers(HEADERS, None)) == {
        "Content-Type",
        "webhook-id",
        "webhook-timestamp",
    }


def test_cross_origin_headers_drop_named_secrets_and_credentials() -> None:
    kept = cross_origin_headers(HEADERS, ["x-api-key"])
    assert set(kept) == {"Content-Type", "webhook-id", "webhook-timestamp", "X-Other"}


def test_cross_origin_url_drops_secret_params() -> None:
    target = URL("https://b.example.com/in?api_key=s&keep=1&theirs=2")
    assert cross_origin_url(target, ["api_key"]).query == {"keep": "1", "theirs": "2"}
    assert cross_origin_url(target, ["api_key", "keep"]).query == {"theirs": "2"}
    assert cross_origin_url(target, []) is target
