"""Authorizations (contract section 6): parsing, method rules, encrypted and redacted forms."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.domain.authorizations import (
    load_stored_authorization,
    parse_authorization,
    parse_header_lines,
    parse_params,
)
from app.domain.errors import ConfigError
from app.domain.secrets import SecretBox

KEY = "correct horse battery staple"


def headers_auth(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "crm-auth",
        "label": "CRM",
        "method": "headers",
        "headers": "Authorization: some-token\nX-Other: v",
    }
    doc.update(overrides)
    return doc


def oauth_auth(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "idp-auth",
        "label": "IdP",
        "method": "oauth2_client_credentials",
        "token_url": "https://idp.example.com/as/token.oauth2",
        "client_id": "client-1",
        "client_secret": "client-secret-value",
    }
    doc.update(overrides)
    return doc


def refused_fields(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_authorization(doc)
    return [p.field for p in exc.value.problems]


def test_header_lines_trimmed_crlf_and_blank_lines() -> None:
    text = "  Authorization :  some-token  \r\n\r\n   \nX-Other:v\r\n"
    assert parse_header_lines(text) == [("Authorization", "some-token"), ("X-Other", "v")]


def test_header_value_may_contain_colons() -> None:
    assert parse_header_lines("X-Url: https://a.example.com:8443") == [
        ("X-Url", "https://a.example.com:8443")
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [("A: 1\nno colon here", 2), ("A: 1\n\nBad Name: x", 3), (": empty name", 1)],
)
def test_bad_header_line_is_refused_by_number(text: str, line: int) -> None:
    with pytest.raises(ValueError, match=f"line {line} "):
        parse_header_lines(text)


def test_bad_header_line_in_config_names_headers_and_line() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_authorization(headers_auth(headers="A: 1\nbroken"))
    [problem] = exc.value.problems
    assert problem.field == "headers"
    assert "line 2" in problem.rule


def test_params_parsing() -> None:
    assert parse_params("param-key1=value1&param-key2=value2") == [
        ("param-key1", "value1"),
        ("param-key2", "value2"),
    ]
    assert parse_params("?a=1&b=") == [("a", "1"), ("b", "")]
    assert parse_params("  ") == []


def test_bad_params_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_params("a=1&novalue")
    assert refused_fields(headers_auth(params="a=1&novalue")) == ["params"]


def test_valid_headers_authorization() -> None:
    auth = parse_authorization(headers_auth(params="k=v"))
    assert auth.header_pairs == [("Authorization", "some-token"), ("X-Other", "v")]
    assert auth.param_pairs == [("k", "v")]


@pytest.mark.parametrize("missing", ["token_url", "client_id", "client_secret"])
def test_oauth2_requires_its_fields(missing: str) -> None:
    doc = oauth_auth()
    del doc[missing]
    assert refused_fields(doc) == [missing]


def test_oauth2_token_url_must_be_https() -> None:
    assert refused_fields(oauth_auth(token_url="http://idp.example.com/token")) == ["token_url"]


def test_oauth2_accepts_token_placeholder() -> None:
    auth = parse_authorization(oauth_auth(headers="X-Token: {token}", params="t={token}"))
    assert auth.header_pairs == [("X-Token", "{token}")]


def test_headers_method_needs_headers_or_params() -> None:
    assert refused_fields(headers_auth(headers="")) == ["headers"]
    assert parse_authorization(headers_auth(headers="", params="k=v")).params == "k=v"


@pytest.mark.parametrize("field", ["headers", "params"])
def test_token_placeholder_refused_for_headers_method(field: str) -> None:
    value = "X-Token: {token}" if field == "headers" else "t={token}"
    assert refused_fields(headers_auth(**{field: value})) == [field]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("token_url", "https://idp.example.com/token"),
        ("client_id", "c"),
        ("client_secret", "s"),
        ("scopes", "read"),
        ("ping_atm_id", "atm"),
    ],
)
def test_oauth_fields_refused_for_headers_method(field: str, value: str) -> None:
    assert refused_fields(headers_auth(**{field: value})) == [field]


def test_stored_encrypts_secrets_and_loads_back() -> None:
    box = SecretBox(KEY)
    auth = parse_authorization(
        oauth_auth(headers="X-Api-Key: header-secret-value", params="k=param-secret-value")
    )
    stored = auth.stored(box)
    dumped = orjson.dumps(stored)
    for secret in (b"header-secret-value", b"param-secret-value", b"client-secret-value"):
        assert secret not in dumped
    assert all(SecretBox.is_encrypted(stored[f]) for f in ("headers", "params", "client_secret"))
    assert stored["client_id"] == "client-1"
    assert load_stored_authorization(orjson.loads(dumped), box) == auth


def test_stored_secrets_cannot_be_loaded_without_a_key() -> None:
    stored = parse_authorization(headers_auth()).stored(SecretBox(KEY))
    with pytest.raises(ValueError):
        load_stored_authorization(stored, None)


def test_redacted_shows_names_never_values() -> None:
    auth = parse_authorization(
        oauth_auth(headers="X-Api-Key: header-secret-value", params="k=param-secret-value")
    )
    shown = auth.redacted()
    dumped = orjson.dumps(shown)
    for secret in (b"header-secret-value", b"param-secret-value", b"client-secret-value"):
        assert secret not in dumped
    assert "X-Api-Key" in shown["headers"]
    assert shown["params"].startswith("k=")
    assert shown["client_secret"] != "client-secret-value"
