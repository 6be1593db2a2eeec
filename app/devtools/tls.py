"""A throwaway certificate authority (trustme) and server certificates for loopback HTTPS."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web


@dataclass(frozen=True)
class LocalTLS:
    """A CA whose PEM sits at `ca_path` (point WEBHOOKS_CA_BUNDLE at it) and a server context."""

    ca_path: Path
    server_context: ssl.SSLContext


def make_local_tls(
    directory: Path, hostnames: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> LocalTLS:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(*hostnames)
    ca_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return LocalTLS(ca_path=ca_path, server_context=context)


async def serve_https(
    app: web.Application, tls: LocalTLS, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve `app` over HTTPS with `tls`'s certificate: (its runner, to clean up; the port it
    listens on, which the OS picks when `port` is 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls.server_context)
    await site.start()
    server: Any = site._server  # aiohttp keeps the listening socket only here
    return runner, server.sockets[0].getsockname()[1]
