"""The webhook HTTP client: one pooled aiohttp session per worker, TLS verified against the
system store plus WEBHOOKS_CA_BUNDLE, connect/total timeouts, and the destination guard
applied to every resolved address, IP literals and redirects included.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from app import __version__
from app.domain.destinations import DestinationRefused, Network, is_ip_literal, refusal
from app.settings import Settings

USER_AGENT = f"audience-webhooks/{__version__}"
MAX_REDIRECTS = 5
EXCERPT_BYTES = 512


def make_ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_bundle is not None:
        context.load_verify_locations(cafile=str(settings.ca_bundle))
    return context


class GuardedResolver(AbstractResolver):  # type: ignore[misc]
    """Resolves like the default resolver, then drops every address the guard refuses."""

    def __init__(self, allowed: list[Network]) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = await self._inner.resolve(host, port, family)
        kept = [r for r in results if refusal(r["host"], self._allowed) is None]
        if not kept:
            reason = refusal(results[0]["host"], self._allowed) if results else "no address"
            raise DestinationRefused(f"{host} resolves to a refused address: {reason}")
        return kept

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What delivery needs of an answer: status, headers, and the body (capped)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def excerpt(self) -> str:
        return self.body[:EXCERPT_BYTES].decode("utf-8", errors="replace")


class WebhookClient:
    """Sends webhook requests; `send` raises DestinationRefused or aiohttp/OS errors."""

    def __init__(self, settings: Settings) -> None:
        self._allowed = settings.allowed_networks
        self._timeout = aiohttp.ClientTimeout(
            total=settings.http_total_timeout_s, sock_connect=settings.http_connect_timeout_s
        )
        self._ssl = make_ssl_context(settings)
        self._session: aiohttp.ClientSession | None = None
        self._checked: set[str] = set()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            ssl=self._ssl,
            limit=0,  # concurrency is bounded per job by worker_count lanes
            resolver=GuardedResolver(self._allowed),
            ttl_dns_cache=60,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT},
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def check_url(self, url: str) -> None:
        """Refuse non-https URLs and refused IP literals before any connection is made."""
        if url in self._checked:
            return
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise DestinationRefused(f"{url!r}: only https:// webhooks are allowed")
        host = parts.hostname or ""
        if is_ip_literal(host):
            reason = refusal(host.strip("[]"), self._allowed)
            if reason:
                raise DestinationRefused(f"{url}: {reason}")
        if len(self._checked) > 10_000:  # URL templates can make many distinct URLs
            self._checked.clear()
        self._checked.add(url)

    async def send(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        max_body: int = 1024 * 1024,
    ) -> WebhookResponse:
        """One request; 307/308 redirects are followed (each hop guarded), others returned."""
        session = self._session
        if session is None:
            raise RuntimeError("WebhookClient.start() was not called")
        for _ in range(MAX_REDIRECTS + 1):
            self.check_url(url)
            async with session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in (307, 308) and location:
                    url = urljoin(url, location)
                    continue
                content = await read_capped(resp.content, max_body + 1)
                return WebhookResponse(status=resp.status, headers=dict(resp.headers), body=content)
        raise DestinationRefused(f"more than {MAX_REDIRECTS} redirects")


async def read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to `limit` bytes (a longer body comes back cut at `limit`)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def exception_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
