"""How every Kafka client of the service connects and authenticates.

One set of settings (WEBHOOKS_KAFKA_SECURITY_PROTOCOL, _SSL_*, _SASL_*, _OAUTH_*) becomes:
- `connection_options(settings)`: the keyword arguments of every aiokafka consumer, producer
  and admin client the worker and the CLI make;
- `faust_credentials(settings)`: the same for the Faust app's own consumer and producer;
- `diagnose(settings)`: when a client cannot start, the reason in words. aiokafka's `start()`
  only says "Unable to bootstrap" and logs the real cause (a refused password, an untrusted
  certificate); this opens one connection itself and names what is wrong and which setting.

OAUTHBEARER tokens come from an OAuth 2.0 client-credentials endpoint, cached until shortly
before they expire; aiokafka asks for one at every new broker connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from app.domain.client_credentials import Token, read_token, token_request
from app.settings import Settings

TOKEN_TIMEOUT_S = 15.0
DIAGNOSE_TIMEOUT_S = 10.0


class KafkaSecurityError(RuntimeError):
    """A security setting cannot be used as given (a certificate that does not load...)."""


class KafkaTokenError(KafkaConnectionError):  # type: ignore[misc]
    """The OAUTHBEARER token endpoint refused or failed. A connection error to aiokafka, so a
    worker retries it like a broker it cannot reach; the message never holds the secret."""


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context for the brokers: the CA file (or the system's), the client certificate."""
    password = settings.kafka_ssl_key_password
    try:
        context = create_ssl_context(
            cafile=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None,
            certfile=str(settings.kafka_ssl_cert_file) if settings.kafka_ssl_cert_file else None,
            keyfile=str(settings.kafka_ssl_key_file) if settings.kafka_ssl_key_file else None,
            password=password.get_secret_value() if password is not None else "",
        )
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise KafkaSecurityError(
            "cannot load the Kafka TLS files (WEBHOOKS_KAFKA_SSL_CA_FILE "
            f"{settings.kafka_ssl_ca_file}, _CERT_FILE {settings.kafka_ssl_cert_file}, "
            f"_KEY_FILE {settings.kafka_ssl_key_file}): {exc}"
        ) from None
    assert isinstance(context, ssl.SSLContext)
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


class OAuthTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens from a client-credentials endpoint, refreshed before they expire."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        assert settings.kafka_oauth_token_url and settings.kafka_oauth_client_id
        assert settings.kafka_oauth_client_secret is not None
        self.url = settings.kafka_oauth_token_url
        self.client_id = settings.kafka_oauth_client_id
        self._secret = settings.kafka_oauth_client_secret.get_secret_value()
        self.scope = settings.kafka_oauth_scope
        self.client_auth = settings.kafka_oauth_client_auth
        ca = settings.kafka_oauth_ca_file
        self._ssl = ssl.create_default_context(cafile=str(ca) if ca else None)
        self._extensions = settings.oauth_extensions
        self._clock = clock
        self._token: Token | None = None
        self._lock: asyncio.Lock | None = None

    def extensions(self) -> dict[str, str]:
        return dict(self._extensions)

    async def token(self) -> str:
        current = self._token
        if current is not None and self._clock() < current.refresh_at:
            return current.value
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            current = self._token
            if current is None or self._clock() >= current.refresh_at:
                current = self._token = await self._fetch()
            return current.value

    async def _fetch(self) -> Token:
        form, headers = token_request(self.client_id, self._secret, self.client_auth, self.scope)
        started = self._clock()
        where = f"Kafka OAuth token endpoint {self.url}"
        try:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT_S)
                ) as session,
                session.post(
                    self.url,
                    data=urlencode(form),
                    headers=headers,
                    ssl=self._ssl,
                    allow_redirects=False,
                ) as response,
            ):
                body = await response.content.read(64 * 1024)
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            reason = reason.replace(self._secret, "***")
            raise KafkaTokenError(f"{where} unreachable: {reason}") from None
        text = body[:300].decode("utf-8", "replace").replace(self._secret, "***")
        if status != 200:
            raise KafkaTokenError(f"{where} answered HTTP {status}: {text}")
        try:
            return read_token(body, started)
        except (ValueError, KeyError, TypeError):
            raise KafkaTokenError(f"{where} answered without an access_token: {text}") from None


@lru_cache(maxsize=16)
def security_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's security keyword arguments; one TLS context and token cache per settings."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if protocol.startswith("SASL_"):
        mechanism = settings.kafka_sasl_mechanism
        options["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = OAuthTokenProvider(settings)
        else:
            assert settings.kafka_sasl_password is not None
            options["sasl_plain_username"] = settings.kafka_sasl_username
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def connection_options(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and security: what every aiokafka client of the service is given."""
    return {"bootstrap_servers": settings.bootstrap_servers, **security_options(settings)}


def faust_credentials(settings: Settings) -> Any:
    """The Faust app's `broker_credentials` for the same settings (None for PLAINTEXT)."""
    import faust

    options = security_options(settings)
    protocol = settings.kafka_security_protocol
    context = options.get("ssl_context")
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(
            oauth_cb=options["sasl_oauth_token_provider"], ssl_context=context
        )
    return faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def explain(settings: Settings, address: str, exc: BaseException) -> str:
    """What a failed connection to `address` means, naming the setting to look at."""
    mechanism = settings.kafka_sasl_mechanism
    cause = exc.__cause__
    if isinstance(exc, KafkaTokenError):
        return f"{exc} (WEBHOOKS_KAFKA_OAUTH_*)"
    if isinstance(exc, SaslAuthenticationFailed):
        who = settings.kafka_sasl_username or settings.kafka_oauth_client_id
        return (
            f"Kafka at {address} refused the {mechanism} credentials of {who!r}: "
            f"{exc.args[0] if exc.args else exc} (WEBHOOKS_KAFKA_SASL_USERNAME/_PASSWORD)"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"Kafka at {address}: {exc} (WEBHOOKS_KAFKA_SASL_MECHANISM)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the TLS certificate of Kafka at {address} is not trusted: {exc.verify_message} "
            "(WEBHOOKS_KAFKA_SSL_CA_FILE, WEBHOOKS_KAFKA_SSL_CHECK_HOSTNAME)"
        )
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError):
        detail = cause if isinstance(cause, ssl.SSLError) else exc
        reason = getattr(detail, "reason", None) or str(detail)
        # An alert from the broker about a certificate is about ours (its own is checked here).
        if "ALERT" in reason and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason):
            return (
                f"Kafka at {address} rejected the TLS client certificate ({reason}): it "
                "requires one its CA signed (WEBHOOKS_KAFKA_SSL_CERT_FILE/_KEY_FILE)"
            )
        return (
            f"TLS with Kafka at {address} failed ({reason}): is it a TLS listener? "
            "(WEBHOOKS_KAFKA_SECURITY_PROTOCOL)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens at {address}: is the broker running? (WEBHOOKS_KAFKA_BOOTSTRAP)"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return (
            f"Kafka at {address} did not answer within {DIAGNOSE_TIMEOUT_S:.0f} s; a client "
            "whose protocol does not match the listener waits like this "
            "(WEBHOOKS_KAFKA_SECURITY_PROTOCOL)"
        )
    protocol = settings.kafka_security_protocol
    if isinstance(exc, IllegalSaslStateError):
        return (
            f"Kafka at {address} does not do SASL on this listener "
            f"(WEBHOOKS_KAFKA_SECURITY_PROTOCOL={protocol})"
        )
    if isinstance(exc, ConnectionResetError | KafkaConnectionError) and protocol in (
        "PLAINTEXT",
        "SSL",
    ):
        other = "a TLS" if protocol == "PLAINTEXT" else "a plaintext"
        return (
            f"Kafka at {address} closed the connection at once: is it {other} listener? "
            f"(WEBHOOKS_KAFKA_SECURITY_PROTOCOL={protocol})"
        )
    if isinstance(exc, KafkaConnectionError) and protocol.startswith("SASL_"):
        if mechanism == "OAUTHBEARER":
            return (
                f"Kafka at {address} closed the connection after the OAUTHBEARER token was "
                "sent: it rejected the token (its broker log says why)"
            )
        return (
            f"Kafka at {address} closed the connection during SASL ({exc}): is it a SASL "
            "listener? (WEBHOOKS_KAFKA_SECURITY_PROTOCOL)"
        )
    return f"Kafka at {address}: {type(exc).__name__}: {exc}"


async def diagnose(settings: Settings) -> str | None:
    """Connect to each bootstrap server as the clients would; the first failure explained,
    or None when every server accepts a session and answers a metadata request."""
    try:
        options = security_options(settings)
    except KafkaSecurityError as exc:
        return str(exc)
    for address in settings.bootstrap_servers:
        host, _, port = address.rpartition(":")
        conn = None
        try:
            async with asyncio.timeout(DIAGNOSE_TIMEOUT_S + 1):
                conn = await create_conn(
                    host.strip("[]"),
                    int(port),
                    request_timeout_ms=int(DIAGNOSE_TIMEOUT_S * 1000),
                    **options,
                )
            async with asyncio.timeout(DIAGNOSE_TIMEOUT_S):
                response = await conn.send(MetadataRequest([]))
            if not response.brokers:
                if settings.kafka_security_protocol.startswith("SASL_") and (
                    settings.kafka_sasl_mechanism == "OAUTHBEARER"
                ):
                    return (
                        f"Kafka at {address} rejected the OAUTHBEARER token from "
                        f"{settings.kafka_oauth_token_url} (the session answers no metadata; "
                        "the broker's log says why, e.g. invalid_token)"
                    )
                return f"Kafka at {address} answered metadata without any broker"
        except (KafkaError, OSError, TimeoutError, ValueError) as exc:
            return explain(settings, address, exc)
        finally:
            if conn is not None:
                conn.close()
    return None
