"""OAuth 2.0 client credentials (RFC 6749 section 4.4) for webhook authorizations.

One `TokenProvider` per authorization and worker: the token is cached and shared by every
request, refreshed shortly before `expires_in` runs out or once after a 401, and only one
refresh runs at a time (concurrent requests wait for it). Errors carry the token endpoint's
own error text, never the client secret.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from app.domain.authorizations import Authorization
from app.domain.redaction import Redactor
from app.transport import metrics
from app.transport.http import WebhookClient, exception_text

DEFAULT_EXPIRES_IN_S = 3600.0
MAX_REFRESH_MARGIN_S = 60.0


class TokenError(RuntimeError):
    """The token endpoint refused or failed; `permanent` for a 4xx (wrong credentials...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = status is not None and 400 <= status < 500


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float
    refresh_at: float


class TokenProvider:
    """The current access token of one authorization."""

    def __init__(
        self,
        auth: Authorization,
        client: WebhookClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.auth = auth
        self.client = client
        self._clock = clock  # unix seconds; tests pass their own to reach expiry at once
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        # Every error text: the token URL with its sensitive parameters masked, and the client
        # secret in any encoding (raw, URL-encoded as the form sends it, Basic, JSON) removed.
        self._redact = Redactor.for_auth(auth).text

    async def token(self) -> str:
        current = self._token
        if current is not None and self._clock() < current.refresh_at:
            return current.value
        async with self._lock:  # one refresh at a time; the others reuse its result
            current = self._token
            if current is None or self._clock() >= current.refresh_at:
                self._token = current = await self._fetch()
            return current.value

    async def refresh_after_401(self, used: str) -> str:
        """A new token unless another request already replaced the one that got the 401."""
        async with self._lock:
            current = self._token
            if current is None or current.value == used:
                self._token = current = await self._fetch()
            return current.value

    async def _fetch(self) -> Token:
        try:
            token = await self._fetch_once()
        except TokenError:
            metrics.TOKEN_FETCHES.labels("error").inc()
            raise
        metrics.TOKEN_FETCHES.labels("ok").inc()
        return token

    async def _fetch_once(self) -> Token:
        auth = self.auth
        assert auth.token_url and auth.client_id and auth.client_secret is not None
        form = {"grant_type": "client_credentials"}
        if auth.scopes:
            form["scope"] = auth.scopes
        if auth.ping_atm_id:
            form["access_token_manager_id"] = auth.ping_atm_id
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if auth.token_auth == "basic":
            # RFC 6749 2.3.1: form-encode id and secret, then HTTP Basic.
            pair = f"{quote(auth.client_id, safe='')}:{quote(auth.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = auth.client_id
            form["client_secret"] = auth.client_secret
        started = self._clock()
        try:
            # Guarded like every webhook request (DestinationRefused propagates): the URL
            # is checked as the client connects to it, at every redirect hop. No redirect
            # to another origin carries the secret: Basic credentials are dropped, and a
            # secret in the body stops the redirect.
            response = await self.client.send(
                "POST",
                auth.token_url,
                urlencode(form).encode(),
                headers,
                max_body=64 * 1024,
                secret_headers=("Authorization",),
                secret_params=(),
                secret_body=auth.token_auth == "body",
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = exception_text(exc)
            raise TokenError(
                self._redact(f"token endpoint {auth.token_url} unreachable: {reason}")
            ) from None
        text = self._redact(response.excerpt)
        if not response.ok:
            raise TokenError(
                self._redact(
                    f"token endpoint {auth.token_url} answered HTTP {response.status}: {text}"
                ),
                status=response.status,
            )
        try:
            doc = orjson.loads(response.body)
            value = str(doc["access_token"])
            lifetime = float(doc.get("expires_in") or DEFAULT_EXPIRES_IN_S)
        except (ValueError, KeyError, TypeError):
            raise TokenError(
                self._redact(
                    f"token endpoint {auth.token_url} answered without an access_token: {text}"
                ),
                status=response.status,
            ) from None
        margin = min(MAX_REFRESH_MARGIN_S, lifetime * 0.1)
        return Token(value, started + lifetime, started + lifetime - margin)
