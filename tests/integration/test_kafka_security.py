"""Secured Kafka (issue 12, item 1): a worker and the CLI over the local broker's SASL_SSL
listener (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN, OAUTHBEARER with tokens from a client-credentials
endpoint) and its mTLS listener deliver a job end to end; wrong credentials, certificates or
protocols end a command and a worker with one line naming the cause, exit status 1.

The listeners, the test CA, the client certificate and the SCRAM/PLAIN user come from
scripts/kafka.sh (kafka/server.properties.in); the input records are produced through the
same secured listener with the service's own client options.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from app.devtools.oauth_server import TokenServer
from app.devtools.receiver import WebhookReceiver
from app.devtools.tls import LocalTLS
from app.settings import settings_from_env
from app.transport.kafka_security import KafkaTokenError, OAuthTokenProvider
from tests.support.broker import ROOT, SecuredListeners, secured_listeners
from tests.support.jobs import (
    apply_jobs,
    job_status,
    run_cli_async,
    triggers_job,
    wait_for_log,
    wait_for_requests,
)
from tests.support.kafka_io import produce
from tests.support.processes import WEBHOOKS, WorkerProcess
from tests.support.records import input_record

CLIENT_ID = "kafka-client"
CLIENT_SECRET = "kafka-client-secret-0123456789"


@pytest.fixture(scope="module")
def listeners(kafka: str) -> SecuredListeners:
    return secured_listeners()


@pytest.fixture
async def token_server(local_tls: LocalTLS) -> AsyncIterator[TokenServer]:
    """A client-credentials endpoint issuing tokens the broker's OAUTHBEARER validator takes."""
    server = TokenServer(local_tls, CLIENT_ID, CLIENT_SECRET, jws_subject="webhooks-oauth")
    await server.start()
    yield server
    await server.stop()


def security_env(
    kind: str,
    listeners: SecuredListeners,
    tmp_path: Path,
    token_server: TokenServer | None = None,
) -> dict[str, str]:
    """Settings for one way of connecting; secrets partly through *_FILE as Secrets mount."""
    password_file = tmp_path / "sasl-password"
    password_file.write_text(listeners.sasl_password + "\n")
    sasl = {
        "WEBHOOKS_KAFKA_BOOTSTRAP": listeners.sasl_ssl,
        "WEBHOOKS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "WEBHOOKS_KAFKA_SSL_CA_FILE": str(listeners.ca_file),
    }
    if kind in ("SCRAM-SHA-256", "PLAIN"):
        return {
            **sasl,
            "WEBHOOKS_KAFKA_SASL_MECHANISM": kind,
            "WEBHOOKS_KAFKA_SASL_USERNAME": listeners.sasl_username,
            "WEBHOOKS_KAFKA_SASL_PASSWORD": listeners.sasl_password,
        }
    if kind == "SCRAM-SHA-512":
        return {
            **sasl,
            "WEBHOOKS_KAFKA_SASL_MECHANISM": kind,
            "WEBHOOKS_KAFKA_SASL_USERNAME": listeners.sasl_username,
            "WEBHOOKS_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        }
    if kind == "OAUTHBEARER":
        assert token_server is not None
        secret_file = tmp_path / "oauth-secret"
        secret_file.write_text(CLIENT_SECRET)
        return {
            **sasl,
            "WEBHOOKS_KAFKA_SASL_MECHANISM": kind,
            "WEBHOOKS_KAFKA_OAUTH_TOKEN_URL": token_server.url,
            "WEBHOOKS_KAFKA_OAUTH_CLIENT_ID": CLIENT_ID,
            "WEBHOOKS_KAFKA_OAUTH_CLIENT_SECRET_FILE": str(secret_file),
            "WEBHOOKS_KAFKA_OAUTH_SCOPE": "kafka",
            "WEBHOOKS_KAFKA_OAUTH_CA_FILE": str(token_server.tls.ca_path),
        }
    assert kind == "mTLS"
    return {
        "WEBHOOKS_KAFKA_BOOTSTRAP": listeners.ssl,
        "WEBHOOKS_KAFKA_SECURITY_PROTOCOL": "SSL",
        "WEBHOOKS_KAFKA_SSL_CA_FILE": str(listeners.ca_file),
        "WEBHOOKS_KAFKA_SSL_CERT_FILE": str(listeners.client_cert),
        "WEBHOOKS_KAFKA_SSL_KEY_FILE": str(listeners.client_key),
    }


@pytest.mark.parametrize("kind", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "OAUTHBEARER", "mTLS"])
async def test_a_job_delivers_end_to_end_over_a_secured_listener(
    kind: str,
    listeners: SecuredListeners,
    test_env: dict[str, str],
    receiver: WebhookReceiver,
    token_server: TokenServer,
    tmp_path: Path,
) -> None:
    env = {**test_env, **security_env(kind, listeners, tmp_path, token_server)}
    # The worker creates its topics, loads its jobs and routes through the secured listener.
    worker = WorkerProcess(env=env, log_path=tmp_path / "worker.log")
    worker.start(wait=False)  # the token endpoint lives on this test's event loop
    try:
        await wait_for_log(worker, "router ready", wait_s=90)
        job = triggers_job(receiver.url("/secured"))
        await apply_jobs(env, tmp_path, worker, job)  # the CLI, over the same listener
        await produce(
            settings_from_env(env),
            env["WEBHOOKS_INPUT_TOPIC"],
            [input_record("user-1", {"email": "a@example.com"}, ("enter", "newsletter"))],
        )
        (request,) = await wait_for_requests(receiver, "/secured", 1)
        assert b'"user-1"' in request.body, request.body
        status = await job_status(env, job["id"])  # status topic read over the listener
        assert status["state"] == "running", status
        if kind == "OAUTHBEARER":
            assert token_server.calls, "no token was fetched"
            assert {c.client_auth for c in token_server.calls} == {"basic"}
            assert {c.form.get("scope") for c in token_server.calls} == {"kafka"}
    finally:
        worker.stop()
        print(worker.tail(40))


async def run_worker_until_exit(env: dict[str, str], timeout_s: float = 60.0) -> tuple[int, str]:
    """A `webhooks worker` that must stop by itself; its exit status and stderr."""
    proc = await asyncio.create_subprocess_exec(
        WEBHOOKS,
        "worker",
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            _, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"the worker did not stop within {timeout_s} s") from None
    return proc.returncode or 0, err.decode()


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and "warning:" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    return lines[0]


async def test_a_wrong_scram_password_stops_the_worker_with_one_line(
    listeners: SecuredListeners, test_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **test_env,
        **security_env("SCRAM-SHA-256", listeners, tmp_path),
        "WEBHOOKS_KAFKA_SASL_PASSWORD": "not-the-password",
    }
    code, err = await run_worker_until_exit(env)
    line = one_error_line(err)
    assert code == 1
    assert "refused the SCRAM-SHA-256 credentials of 'webhooks'" in line
    assert "WEBHOOKS_KAFKA_SASL_USERNAME/_PASSWORD" in line
    assert "not-the-password" not in err


async def test_the_cli_names_each_wrong_credential_certificate_or_protocol(
    listeners: SecuredListeners,
    test_env: dict[str, str],
    token_server: TokenServer,
    tmp_path: Path,
) -> None:
    stranger = trustme.CA()  # a CA the broker does not know
    stranger_cert = stranger.issue_cert("webhooks-client@example.test")
    stranger_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "stranger-cert.pem"))
    stranger_cert.private_key_pem.write_to_path(str(tmp_path / "stranger-key.pem"))
    stranger.cert_pem.write_to_path(str(tmp_path / "stranger-ca.pem"))
    mtls = security_env("mTLS", listeners, tmp_path)
    oauth = security_env("OAUTHBEARER", listeners, tmp_path, token_server)
    cases: list[tuple[dict[str, str], str]] = [
        (
            {**security_env("SCRAM-SHA-512", listeners, tmp_path)}
            | {"WEBHOOKS_KAFKA_SASL_USERNAME": "nobody"},
            "refused the SCRAM-SHA-512 credentials of 'nobody'",
        ),
        (
            {**security_env("PLAIN", listeners, tmp_path), "WEBHOOKS_KAFKA_SASL_PASSWORD": "x"},
            "refused the PLAIN credentials of 'webhooks'",
        ),
        (
            {k: v for k, v in mtls.items() if "CERT" not in k and "KEY" not in k},
            "rejected the TLS client certificate",
        ),
        (
            mtls
            | {
                "WEBHOOKS_KAFKA_SSL_CERT_FILE": str(tmp_path / "stranger-cert.pem"),
                "WEBHOOKS_KAFKA_SSL_KEY_FILE": str(tmp_path / "stranger-key.pem"),
            },
            "rejected the TLS client certificate",
        ),
        (
            mtls | {"WEBHOOKS_KAFKA_SSL_CA_FILE": str(tmp_path / "stranger-ca.pem")},
            "is not trusted",
        ),
        (
            {
                "WEBHOOKS_KAFKA_BOOTSTRAP": listeners.ssl,
                "WEBHOOKS_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            },
            "is it a TLS listener?",
        ),
        (
            {k: v for k, v in oauth.items() if k != "WEBHOOKS_KAFKA_OAUTH_CLIENT_SECRET_FILE"}
            | {"WEBHOOKS_KAFKA_OAUTH_CLIENT_SECRET": "wrong-secret"},
            "answered HTTP 401",
        ),
    ]
    # A token endpoint whose tokens the broker does not accept (opaque, not a JWS).
    opaque = TokenServer(token_server.tls, CLIENT_ID, CLIENT_SECRET)
    await opaque.start()
    cases.append(
        (oauth | {"WEBHOOKS_KAFKA_OAUTH_TOKEN_URL": opaque.url}, "rejected the OAUTHBEARER token")
    )
    try:
        for overrides, expected in cases:
            await check_fails(test_env, overrides, expected)
    finally:
        await opaque.stop()
    assert opaque.calls, "the opaque token endpoint was never asked"


async def check_fails(test_env: dict[str, str], overrides: dict[str, str], expected: str) -> None:
    """`webhooks topics create` with `overrides` ends at once: exit 1, one line, no secret."""
    result = await run_cli_async({**test_env, **overrides}, "topics", "create")
    line = one_error_line(result.err)
    assert result.code == 1, (overrides, result)
    assert expected in line, (overrides, line)
    for secret in ("wrong-secret", CLIENT_SECRET, "webhooks-test-secret"):
        assert secret not in result.err


async def test_invalid_security_settings_are_named_before_connecting(
    test_env: dict[str, str], tmp_path: Path
) -> None:
    both = tmp_path / "pw"
    both.write_text("from-file")
    cases: list[tuple[dict[str, str], str]] = [
        (
            {"WEBHOOKS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "WEBHOOKS_KAFKA_SASL_USERNAME": "u"},
            "SASL mechanism PLAIN needs WEBHOOKS_KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "WEBHOOKS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "WEBHOOKS_KAFKA_SASL_USERNAME": "u",
                "WEBHOOKS_KAFKA_SASL_PASSWORD": "secret-in-env",
                "WEBHOOKS_KAFKA_SASL_PASSWORD_FILE": str(both),
            },
            "set WEBHOOKS_KAFKA_SASL_PASSWORD or WEBHOOKS_KAFKA_SASL_PASSWORD_FILE, not both",
        ),
        (
            {"WEBHOOKS_KAFKA_SECURITY_PROTOCOL": "TLS"},
            "WEBHOOKS_KAFKA_SECURITY_PROTOCOL: Input should be",
        ),
        (
            {"WEBHOOKS_KAFKA_SSL_CA_FILE": str(tmp_path / "missing.pem")},
            "WEBHOOKS_KAFKA_SSL_CA_FILE: Path does not point to a file",
        ),
    ]
    for overrides, expected in cases:
        result = await run_cli_async({**test_env, **overrides}, "topics", "create")
        line = one_error_line(result.err)
        assert result.code == 2, (overrides, result)
        assert expected in line, (overrides, line)
        assert "secret-in-env" not in result.err and "from-file" not in result.err


async def test_oauth_tokens_are_cached_until_shortly_before_they_expire(
    listeners: SecuredListeners, token_server: TokenServer, tmp_path: Path
) -> None:
    env = security_env("OAUTHBEARER", listeners, tmp_path, token_server)
    now = [1_000_000.0]
    provider = OAuthTokenProvider(
        settings_from_env(env | {"WEBHOOKS_KAFKA_OAUTH_CLIENT_AUTH": "body"}), clock=lambda: now[0]
    )
    first = await provider.token()
    assert await provider.token() == first
    assert len(token_server.calls) == 1
    call = token_server.calls[0]
    assert call.client_auth == "body" and call.form["scope"] == "kafka"
    now[0] += token_server.expires_in - 61  # not yet within a minute of expiry
    assert await provider.token() == first
    now[0] += 2
    await provider.token()
    assert len(token_server.calls) == 2
    wrong = OAuthTokenProvider(
        settings_from_env(
            {k: v for k, v in env.items() if not k.endswith("SECRET_FILE")}
            | {"WEBHOOKS_KAFKA_OAUTH_CLIENT_SECRET": "wrong-secret-value"}
        )
    )
    with pytest.raises(KafkaTokenError) as info:
        await wrong.token()
    assert "answered HTTP 401" in str(info.value) and "invalid_client" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)
