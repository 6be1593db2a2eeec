"""The HTTP API for tests: served in the test's event loop on a free loopback port (real
HTTP, real broker), and a small client that returns (status, JSON)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from app.api.server import serve
from app.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def running_api(settings: Settings, token: str | None) -> AsyncIterator[str]:
    """Serve the API with `token` (None: none required); yields its base URL."""
    api_settings = settings.model_copy(
        update={
            "api_host": "127.0.0.1",
            "api_port": free_port(),
            "api_token": SecretStr(token) if token is not None else None,
        }
    )
    runner = await serve(api_settings)
    try:
        yield f"http://127.0.0.1:{api_settings.api_port}"
    finally:
        await runner.cleanup()


class ApiClient:
    def __init__(self, base: str, token: str | None) -> None:
        self.base = base
        self.token = token

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = "default"
    ) -> tuple[int, Any]:
        use = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {use}"} if use is not None else {}
        data = orjson.dumps(body) if body is not None else None
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base + path, data=data, headers=headers) as response,
        ):
            raw = await response.read()
            return response.status, orjson.loads(raw) if raw else None


def job_doc(**fields: Any) -> dict[str, Any]:
    """A valid triggers job body for PUT /v1/jobs/{id}, with `fields` changed."""
    return {
        "type": "audience_triggers",
        "label": "api job",
        "audiences": ["newsletter"],
        "webhook_url": "https://hooks.example.com/in",
        **fields,
    }
