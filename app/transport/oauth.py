"""OAuth 2.0 client credentials (RFC 6749 section 4.4) for webhook authorizations.

One `TokenProvider` per authorization and worker: the token is cached and shared by every
request, refreshed shortly before `expires_in` runs out or once after a 401, and only one
refresh runs at a time (concurrent requests wait for it). Errors carry the token endpoint's
own error text, never the client secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp

from app.domain.authorizations import Authorization
from app.domain.client_credentials import Token, read_token, token_request
from app.domain.redaction import Redactor
from app.transport import metrics
from app.transport.http import WebhookClient, exception_text


class TokenError(RuntimeError):
    """The token endpoint refused or failed; `permanent` for a 4xx (wrong credentials...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = status is not None and 400 <= status < 500


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
        form, headers = token_request(
            auth.client_id,
            auth.client_secret,
            auth.token_auth,
            auth.scopes or "",
            {"access_token_manager_id": auth.ping_atm_id} if auth.ping_atm_id else None,
        )
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
            return read_token(response.body, started)
        except (ValueError, KeyError, TypeError):
            raise TokenError(
                self._redact(
                    f"token endpoint {auth.token_url} answered without an access_token: {text}"
                ),
                status=response.status,
            ) from None
