"""Redaction (invariant 6): no secret survives in any encoding, no sensitive URL parameter
value survives in an error text; property tests over arbitrary secrets and surrounding text."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote, quote_plus, unquote, urlencode

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from app.domain.authorizations import Authorization, parse_authorization
from app.domain.redaction import (
    MIN_SECRET_LENGTH,
    Redactor,
    is_sensitive_param,
    mask_url_params,
    redact,
)
from app.transport.http import WebhookClient, WebhookResponse, exception_text
from app.transport.oauth import TokenError, TokenProvider

CLIENT_ID = "client-1"


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def b64_variants(data: str) -> list[str]:
    raw = data.encode("utf-8", "surrogatepass")
    out = []
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        full = encode(raw).decode()
        out += [full, full.rstrip("=")]
    return out


ENCODINGS: dict[str, Callable[[str], list[str]]] = {
    "raw": lambda s: [s],
    "quote": lambda s: [quote(s, safe=""), lower_hex(quote(s, safe=""))],
    "quote_plus": lambda s: [quote_plus(s), lower_hex(quote_plus(s))],
    "json": lambda s: [
        json.dumps(s)[1:-1],
        json.dumps(s, ensure_ascii=False)[1:-1],
        orjson.dumps(s).decode()[1:-1],
    ],
    "base64": b64_variants,
    "basic": lambda s: (
        b64_variants(f"{CLIENT_ID}:{s}")
        + b64_variants(f"{quote(CLIENT_ID, safe='')}:{quote(s, safe='')}")
    ),
}


def all_forms(secret: str) -> list[str]:
    return [form for encode in ENCODINGS.values() for form in encode(secret)]


# Secrets of any characters (also '%', '+', '/', '"', '\\', spaces, non-ASCII, emoji).
secrets_st = st.text(min_size=MIN_SECRET_LENGTH, max_size=40).filter(lambda s: s.strip() == s)
surrounding = st.text(max_size=30)


def oauth(secret: str, **extra: Any) -> Authorization:
    return parse_authorization(
        {
            "id": "idp",
            "label": "IdP",
            "method": "oauth2_client_credentials",
            "token_url": "https://idp.example.com/token",
            "client_id": CLIENT_ID,
            "client_secret": secret,
            **extra,
        }
    )


# -- properties --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=secrets_st,
    before=surrounding,
    after=surrounding,
    encoding=st.sampled_from(sorted(ENCODINGS)),
)
@example(secret="s3cr3t/+ =?&é😀", before="x", after="y", encoding="quote")
@example(secret="****", before="*", after="*", encoding="raw")
@example(secret='a"b\\c', before="{", after="}", encoding="json")
def test_no_form_of_a_secret_survives(secret: str, before: str, after: str, encoding: str) -> None:
    redactor = Redactor([secret], client_id=CLIENT_ID)
    for form in ENCODINGS[encoding](secret):
        out = redactor.text(f"{before}{form}{after}")
        leaked = [f for f in all_forms(secret) if f in out]
        assert not leaked, (form, out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secrets=st.lists(secrets_st, min_size=1, max_size=4), filler=st.lists(surrounding))
def test_every_secret_in_every_form_at_once(secrets: list[str], filler: list[str]) -> None:
    parts = [form for s in secrets for form in all_forms(s)]
    text = "".join(p + (filler[i % len(filler)] if filler else " ") for i, p in enumerate(parts))
    out = Redactor(secrets, client_id=CLIENT_ID).text(text)
    for secret in secrets:
        assert not [f for f in all_forms(secret) if f in out]


@settings(max_examples=200, deadline=None)
@given(secret=secrets_st, before=surrounding, after=surrounding)
def test_client_secret_of_an_authorization_never_survives(
    secret: str, before: str, after: str
) -> None:
    auth = oauth(secret.strip() or "fallback-secret")
    form_body = urlencode({"grant_type": "client_credentials", "client_secret": auth.client_secret})
    out = Redactor.for_auth(auth).text(f"{before}{form_body}{after}")
    assert auth.client_secret is not None
    assert not [f for f in all_forms(auth.client_secret) if f in out]


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(
        [
            *("access_token", "TOKEN", "Api_Key", "apikey", "key", "secret", "client_secret"),
            *("password", "sig", "Signature", "refresh_token", "X-Api-Key", "my_custom"),
        ]
    ),
    value=st.text(min_size=1, max_size=30),
    other=st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=8),
)
def test_sensitive_url_parameter_values_are_masked(name: str, value: str, other: str) -> None:
    url = f"https://hooks.example.com/in?page={other}&{name}={quote(value, safe='')}#frag"
    text = f"400, message='Bad Request', url={URL(url)!r}"
    out = mask_url_params(text, ["my_custom"])
    assert f"{name}=***" in out
    assert f"{name}={quote(value, safe='')}" not in out or quote(value, safe="") == "***"
    assert f"page={other}" in out  # not sensitive: kept for diagnosis


# -- examples ----------------------------------------------------------------------------


def test_redact_keeps_its_signature_and_now_covers_encodings() -> None:
    secret = "s3cr3t value/+"
    text = (
        f"raw {secret} pct {quote(secret, safe='')} plus {quote_plus(secret)} "
        f"json {json.dumps(secret)}"
    )
    out = redact(text, [secret, "", "abc"])
    assert out.count("***") == 4
    assert not [f for f in all_forms(secret) if f in out]


def test_short_secrets_are_not_searched_but_their_parameter_is_masked() -> None:
    auth = parse_authorization(
        {"id": "a", "label": "A", "method": "headers", "params": "k9=abc&page=2"}
    )
    out = Redactor.for_auth(auth).text("GET https://h.example/p?k9=abc&page=2 failed: abc")
    assert "k9=***" in out and "page=***" in out  # both are the authorization's parameters
    assert out.endswith("failed: abc")  # 3 characters: too short to search for in prose


def test_ordinary_parameters_and_text_are_kept() -> None:
    text = "HTTP 500 from https://h.example/p?user=bob&page=2: database unavailable"
    assert mask_url_params(text) == text
    assert redact(text, ["s3cr3t-value"]) == text


def test_always_sensitive_names() -> None:
    for name in ("access_token", "Token", "API_KEY", "apikey", "Key", "secret", "sig"):
        assert is_sensitive_param(name)
    for name in ("client_secret", "password", "Signature", "refresh_token", "X-Api-Key"):
        assert is_sensitive_param(name)
    assert is_sensitive_param("api%5Fkey")  # percent-encoded name
    for name in ("page", "user", "id", "keyword", "tokens_left"):
        assert not is_sensitive_param(name)
    assert is_sensitive_param("custom", frozenset({"custom"}))


def test_form_body_echoed_by_a_token_endpoint() -> None:
    auth = oauth("cs-Very Secret/9f+8e=7d", token_auth="body")
    echoed = "invalid_client: " + urlencode(
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "x"}
    ).replace("client_secret=x", "client_secret=" + quote_plus(auth.client_secret or ""))
    out = Redactor.for_auth(auth).text(echoed)
    assert "client_secret=***" in out
    assert quote_plus(auth.client_secret or "") not in out


def test_secret_inside_a_longer_base64_blob() -> None:
    secret = "hv-Header-Secret-1a2b3c"
    for prefix in ("", "x", "xy", "user:"):
        blob = base64.b64encode(f"{prefix}{secret}-and-more".encode()).decode()
        out = redact(f"echo {blob}", [secret])
        assert out != f"echo {blob}"
        assert "***" in out


def test_authorization_values_as_sent_and_their_credentials() -> None:
    auth = parse_authorization(
        {
            "id": "crm",
            "label": "CRM",
            "method": "oauth2_client_credentials",
            "token_url": "https://idp.example.com/token",
            "client_id": CLIENT_ID,
            "client_secret": "cs-secret-value",
            "headers": "X-Token: tok-{token}\nX-Static: Bearer static-credential-99",
            "params": "access_token={token}&tenant=acme-tenant-id",
        }
    )
    token = "eyJhbGciOiJIUzI1NiJ9.payload.sig-part"
    redactor = Redactor.for_auth(auth, token)
    text = (
        f"ClientResponseError: 401, url='https://h.example/in?access_token={token}"
        f"&tenant=acme-tenant-id' X-Token: tok-{token} echoed static-credential-99 "
        f"basic {base64.b64encode(f'{CLIENT_ID}:cs-secret-value'.encode()).decode()}"
    )
    out = redactor.text(text)
    for leaked in (token, "acme-tenant-id", "static-credential-99", "cs-secret-value"):
        assert leaked not in out
    assert "access_token=***" in out and "tenant=***" in out


def test_yarl_encoded_url_in_a_client_response_error() -> None:
    """What aiohttp puts in str(exc): the URL as yarl encodes it (partly percent-encoded)."""
    secret = "s3cr3t /+?&=é'\"value"
    auth = parse_authorization(
        {"id": "a", "label": "A", "method": "headers", "params": f"sig={quote(secret, safe='')}"}
    )
    url = URL("https://h.example/in").with_query({"sig": secret, "q": secret, "page": "2"})
    info = aiohttp.RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url)
    exc = aiohttp.ClientResponseError(info, (), status=401, message="Unauthorized")
    out = Redactor.for_auth(auth).text(exception_text(exc))
    assert secret not in unquote(out)
    assert secret.replace(" ", "+") not in unquote(out)
    assert "page=2" in out


def test_adversarial_text_stays_bounded() -> None:
    out = Redactor(["abcd"], ["a"]).text("a=" * 50_000 + "abcd" * 10_000)
    assert "abcd" not in out


# -- OAuth error texts -------------------------------------------------------------------


class EchoingTokenEndpoint:
    """A token endpoint double answering with a fixed status and the request's form echoed."""

    def __init__(self, status: int) -> None:
        self.status = status

    async def send(
        self, method: str, url: Any, body: bytes, headers: Any, *a: Any, **k: Any
    ) -> WebhookResponse:
        echo = f"invalid_client for {body.decode()} auth={headers.get('Authorization', '')}"
        return WebhookResponse(self.status, {}, echo.encode())


class FailingTokenEndpoint:
    async def send(self, method: str, url: Any, *a: Any, **k: Any) -> WebhookResponse:
        info = aiohttp.RequestInfo(URL(url), method, CIMultiDictProxy(CIMultiDict()), URL(url))
        raise aiohttp.ClientResponseError(info, (), status=502, message="Bad Gateway")


@pytest.mark.parametrize("token_auth", ["basic", "body"])
@pytest.mark.parametrize("status", [401, 200])
async def test_token_errors_hold_no_form_of_the_client_secret(token_auth: str, status: int) -> None:
    secret = "cs-Very Secret/9f+8e=7d"
    auth = oauth(
        secret, token_auth=token_auth, token_url="https://idp.example.com/t?api_key=k-123456"
    )
    provider = TokenProvider(auth, cast(WebhookClient, EchoingTokenEndpoint(status)))
    with pytest.raises(TokenError) as caught:
        await provider.token()
    message = str(caught.value)
    assert "token endpoint https://idp.example.com/t?api_key=***" in message
    assert not [f for f in all_forms(secret) if f in message], message
    assert "k-123456" not in message


async def test_unreachable_token_endpoint_error_masks_the_url() -> None:
    auth = oauth("cs-secret-value", token_url="https://idp.example.com/t?token=tk-99999")
    provider = TokenProvider(auth, cast(WebhookClient, FailingTokenEndpoint()))
    with pytest.raises(TokenError) as caught:
        await provider.token()
    assert "tk-99999" not in str(caught.value)
    assert "unreachable" in str(caught.value)
