"""The webhook HTTP client: one pooled aiohttp session per worker, TLS verified against the
system store plus WEBHOOKS_CA_BUNDLE, connect/total timeouts, and the destination guard
applied to every resolved address, IP literals and redirects included.

The guard judges the host as aiohttp connects to it (invariant 7): each URL is parsed once
with yarl, checked (`check_destination`: https, IP literals, non-canonical numeric hosts),
and that very URL object is handed to aiohttp; names go through `GuardedResolver`, which
drops every refused address they resolve to.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from app import __version__
from app.domain.destinations import DestinationRefused, Network, check_destination, origin, refusal
from app.domain.urls import cross_origin_headers, cross_origin_url
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


class RedirectError(aiohttp.ClientError):
    """A redirect that is not followed: a failed request, retried like any transport error
    (not a refused destination, which would be dead-lettered)."""


class TooManyRedirects(RedirectError):
    """More than MAX_REDIRECTS hops (a redirect loop)."""


class InvalidRedirect(RedirectError):
    """A redirect whose Location is not a URL."""


class UnsafeRedirect(RedirectError):
    """A redirect to another origin that would carry a secret the client cannot strip."""


class WebhookClient:
    """Sends webhook requests; `send` raises DestinationRefused or aiohttp/OS errors."""

    def __init__(self, settings: Settings) -> None:
        self._allowed = settings.allowed_networks
        self._timeout = aiohttp.ClientTimeout(
            total=settings.http_total_timeout_s, sock_connect=settings.http_connect_timeout_s
        )
        self._ssl = make_ssl_context(settings)
        self._session: aiohttp.ClientSession | None = None

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
            trust_env=False,  # no proxy from the environment: we connect where we checked
            # Cookies a receiver sets are never sent back: each request stands alone, and one
            # job's endpoint must not hand state to the next request (the jar was also
            # filtered on every request and updated on every answer).
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def check_url(self, url: str | URL) -> URL:
        """The URL exactly as the client will use it (yarl, host IDNA-normalised); raises
        DestinationRefused for a non-https URL or a host the guard refuses: a refused IP
        literal or a numeric host that is not a canonical address. DNS names are checked
        by the resolver, on every address they resolve to."""
        return check_destination(url, self._allowed)

    async def send(
        self,
        method: str,
        url: str | URL,
        body: bytes,
        headers: Mapping[str, str],
        max_body: int = 1024 * 1024,
        *,
        secret_headers: Collection[str] | None = None,
        secret_params: Collection[str] | None = None,
        secret_body: bool = False,
    ) -> WebhookResponse:
        """One request; 307/308 redirects are followed (each hop guarded), others returned.

        Every hop is checked by `check_url` and the checked yarl URL itself is what aiohttp
        gets, so the host judged is the host connected to. A redirect to another origin
        (scheme, host or port) drops Authorization, Cookie and the `secret_headers`, and the
        `secret_params` from the new URL's query (at every later hop too); None means "not
        known": then only the request's own descriptive headers follow, and every query
        parameter name of `url` counts as secret. With `secret_body` (the body holds a
        secret, e.g. an OAuth client secret) a redirect to another origin is not followed.

        Raises DestinationRefused (a refused URL at any hop), RedirectError (too many
        redirects, an unusable Location, an unsafe cross-origin redirect: retryable, an
        aiohttp.ClientError), or aiohttp/OS errors.
        """
        session = self._session
        if session is None:
            raise RuntimeError("WebhookClient.start() was not called")
        target = self.check_url(url)
        current = dict(headers)
        # Unknown secret parameters: every parameter of the request as sent is ours.
        ours = set(target.query) if secret_params is None else set(secret_params)
        for _ in range(MAX_REDIRECTS + 1):
            async with session.request(
                method, target, data=body, headers=current, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status not in (307, 308) or not location:
                    content = await read_capped(resp.content, max_body + 1)
                    return WebhookResponse(
                        status=resp.status, headers=dict(resp.headers), body=content
                    )
            following = self.check_url(redirect_target(target, location))
            if origin(following) != origin(target):
                if secret_body:
                    raise UnsafeRedirect(
                        f"HTTP {resp.status} to another origin ({describe(following)}) "
                        "not followed: the request body carries a secret"
                    )
                current = cross_origin_headers(current, secret_headers)
                following = cross_origin_url(following, ours)
            target = following
        raise TooManyRedirects(
            f"too many redirects (more than {MAX_REDIRECTS}), last to {describe(target)}"
        )


def redirect_target(current: URL, location: str) -> URL:
    """Where a redirect's Location points, resolved against the URL that answered it."""
    try:
        return current.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise InvalidRedirect(f"redirect Location is not a valid URL: {exc}") from None


def describe(url: URL) -> str:
    """A URL for messages: scheme, host, port and path; never credentials or the query."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


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
