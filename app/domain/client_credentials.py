"""The OAuth 2.0 client credentials grant (RFC 6749 section 4.4) without the transport: the
token request's form and headers, and reading the endpoint's answer into a token with the
time to refresh it. Used for webhook authorizations (`transport/oauth.py`) and for Kafka's
OAUTHBEARER (`transport/kafka_security.py`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import orjson

DEFAULT_EXPIRES_IN_S = 3600.0
MAX_REFRESH_MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float
    refresh_at: float


def token_request(
    client_id: str,
    client_secret: str,
    client_auth: Literal["basic", "body"],
    scope: str = "",
    extra: dict[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The form and headers of a token request. `basic`: id and secret form-encoded, then
    HTTP Basic (RFC 6749 2.3.1); `body`: both in the form."""
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    form.update(extra or {})
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    if client_auth == "basic":
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form["client_id"] = client_id
        form["client_secret"] = client_secret
    return form, headers


def read_token(body: bytes, started: float) -> Token:
    """The token in an endpoint's JSON answer to a request sent at `started` (unix s); it is
    refreshed a minute (at most a tenth of its lifetime) before it expires. ValueError,
    KeyError or TypeError when the answer holds no access_token."""
    doc = orjson.loads(body)
    value = str(doc["access_token"])
    lifetime = float(doc.get("expires_in") or DEFAULT_EXPIRES_IN_S)
    margin = min(MAX_REFRESH_MARGIN_S, lifetime * 0.1)
    return Token(value, started + lifetime, started + lifetime - margin)
