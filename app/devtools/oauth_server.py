"""A local HTTPS OAuth 2.0 token endpoint (client credentials) for tests and the demo.

Issues short-lived tokens, counts its calls, remembers what each call asked for (scope,
Ping's access_token_manager_id, how the client authenticated), and can revoke tokens so a
webhook receiver answers 401.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web

from app.devtools.tls import LocalTLS, serve_https


def unsecured_jws(subject: str, lifetime_s: float, now: float | None = None) -> str:
    """An unsecured JWS (`alg: none`) with `sub`, `iat` and `exp`: what Kafka's default
    OAUTHBEARER validator accepts without an identity provider (the local broker's SASL_SSL
    listener). Kafka 4.1 decodes it with the standard base64 alphabet although it is
    base64url, so a filler claim is varied until no segment holds '-' or '_'."""
    issued = int(time.time() if now is None else now)
    for filler in range(10_000):
        claims = {"sub": subject, "iat": issued, "exp": issued + int(lifetime_s), "n": filler}
        raw = json.dumps(claims, separators=(",", ":")).encode()
        payload = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        if "-" not in payload and "_" not in payload:
            return "eyJhbGciOiJub25lIn0." + payload + "."  # header {"alg":"none"}
    raise RuntimeError("no Kafka-compatible unsecured JWS found")


@dataclass
class TokenCall:
    form: dict[str, str]
    client_auth: str  # "basic" or "body"
    at: float


@dataclass
class TokenServer:
    tls: LocalTLS
    client_id: str
    client_secret: str
    expires_in: float = 3600.0
    calls: list[TokenCall] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    port: int = 0
    jws_subject: str | None = None
    """When set, tokens are unsecured JWS for that subject (for a Kafka OAUTHBEARER broker)."""
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/as/token.oauth2"

    def valid(self, token: str) -> bool:
        return self.tokens.get(token, 0.0) > time.time()

    def revoke_all(self) -> None:
        self.tokens.clear()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/as/token.oauth2", self._token)
        self._runner, self.port = await serve_https(app, self.tls)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            client_id, secret, how = unquote(user), unquote(password), "basic"
        else:
            client_id, secret, how = (
                form.get("client_id", ""),
                form.get("client_secret", ""),
                "body",
            )
        self.calls.append(TokenCall(form=form, client_auth=how, at=time.time()))
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if client_id != self.client_id or secret != self.client_secret:
            return web.json_response(
                {"error": "invalid_client", "error_description": "client authentication failed"},
                status=401,
            )
        token = (
            unsecured_jws(self.jws_subject, self.expires_in)
            if self.jws_subject is not None
            else f"tok-{len(self.calls)}-{int(time.time() * 1000) % 100000}"
        )
        self.tokens[token] = time.time() + self.expires_in
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        )
