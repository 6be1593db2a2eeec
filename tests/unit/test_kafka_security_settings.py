"""Kafka security settings (issue 12, item 1) without a broker: which combinations are
refused and how, *_FILE variants, the aiokafka options and Faust credentials each protocol
gives, and the words a failed connection is explained with."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
import trustme
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from app.settings import Settings, SettingsError, load_settings
from app.transport.kafka_security import (
    KafkaSecurityError,
    KafkaTokenError,
    OAuthTokenProvider,
    explain,
    faust_credentials,
    security_options,
)


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("kafka-pems")
    ca = trustme.CA()
    client = ca.issue_cert("client@example.test")
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "cert.pem",
        "key": directory / "key.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def make(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in list(os.environ):
        if name.startswith("WEBHOOKS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(f"WEBHOOKS_{name.upper()}", value)
    return load_settings()


def refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(SettingsError) as info:
        make(monkeypatch, **env)
    return str(info.value)


def test_plaintext_is_the_default_and_needs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(monkeypatch)
    assert security_options(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None


def test_scram_over_tls_gives_every_client_the_same_options(
    monkeypatch: pytest.MonkeyPatch, pems: dict[str, Path]
) -> None:
    s = make(
        monkeypatch,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_ca_file=str(pems["ca"]),
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    options = security_options(s)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].check_hostname is True
    assert security_options(s) is options  # one TLS context per settings, not per client
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.ssl_context is options["ssl_context"]


def test_sasl_plaintext_has_no_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make(
        monkeypatch,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    assert "ssl_context" not in security_options(s)
    creds = faust_credentials(s)
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.mechanism.value == "PLAIN"


def test_mutual_tls_loads_the_client_certificate(
    monkeypatch: pytest.MonkeyPatch, pems: dict[str, Path]
) -> None:
    s = make(
        monkeypatch,
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=str(pems["ca"]),
        kafka_ssl_cert_file=str(pems["cert"]),
        kafka_ssl_key_file=str(pems["key"]),
        kafka_ssl_check_hostname="false",
    )
    options = security_options(s)
    assert options["security_protocol"] == "SSL"
    assert options["ssl_context"].check_hostname is False
    assert isinstance(faust_credentials(s), faust.SSLCredentials)


def test_a_certificate_file_that_is_not_one_is_named(
    monkeypatch: pytest.MonkeyPatch, pems: dict[str, Path]
) -> None:
    s = make(
        monkeypatch,
        kafka_security_protocol="SSL",
        kafka_ssl_cert_file=str(pems["ca"]),  # a certificate without its key
    )
    with pytest.raises(KafkaSecurityError, match="cannot load the Kafka TLS files"):
        security_options(s)


def test_oauthbearer_uses_a_token_provider_with_extensions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = make(
        monkeypatch,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_oauth_token_url="https://idp.example.test/token",
        kafka_oauth_client_id="id",
        kafka_oauth_client_secret="secret",
        kafka_oauth_extensions="logicalCluster=lkc-1, identityPoolId=pool-2",
    )
    provider = security_options(s)["sasl_oauth_token_provider"]
    assert isinstance(provider, OAuthTokenProvider)
    assert provider.extensions() == {"logicalCluster": "lkc-1", "identityPoolId": "pool-2"}
    creds = faust_credentials(s)
    assert isinstance(creds, faust.OAuthCredentials) and creds.oauth_cb is provider


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-256"},
            "SASL mechanism SCRAM-SHA-256 needs WEBHOOKS_KAFKA_SASL_USERNAME, "
            "WEBHOOKS_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"},
            "OAUTHBEARER needs WEBHOOKS_KAFKA_OAUTH_TOKEN_URL, WEBHOOKS_KAFKA_OAUTH_CLIENT_ID, "
            "WEBHOOKS_KAFKA_OAUTH_CLIENT_SECRET",
        ),
        (
            {"kafka_sasl_username": "u", "kafka_sasl_password": "p"},
            "WEBHOOKS_KAFKA_SASL_USERNAME is only used with SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            {
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "OAUTHBEARER",
                "kafka_oauth_token_url": "ftp://idp/token",
                "kafka_oauth_client_id": "i",
                "kafka_oauth_client_secret": "s",
                "kafka_oauth_extensions": "novalue",
            },
            "not an http(s) URL",
        ),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "WEBHOOKS_KAFKA_SASL_MECHANISM: Input should be"),
    ],
)
def test_incoherent_settings_are_refused_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    assert message in refused(monkeypatch, **env)


def test_tls_files_without_tls_or_a_key_without_its_certificate_are_refused(
    monkeypatch: pytest.MonkeyPatch, pems: dict[str, Path]
) -> None:
    text = refused(monkeypatch, kafka_ssl_ca_file=str(pems["ca"]))
    assert "WEBHOOKS_KAFKA_SSL_CA_FILE is only used with SSL or SASL_SSL" in text
    text = refused(monkeypatch, kafka_security_protocol="SSL", kafka_ssl_key_file=str(pems["key"]))
    assert "WEBHOOKS_KAFKA_SSL_KEY_FILE needs WEBHOOKS_KAFKA_SSL_CERT_FILE" in text


def test_secrets_come_from_files_without_their_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "user").write_text("svc\n")
    (tmp_path / "password").write_text("p@ss word \r\n")
    (tmp_path / "key").write_text("awk1:" + "A" * 43)
    s = make(
        monkeypatch,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username_file=str(tmp_path / "user"),
        kafka_sasl_password_file=str(tmp_path / "password"),
        secret_key_file=str(tmp_path / "key"),
    )
    assert s.kafka_sasl_username == "svc"
    assert s.kafka_sasl_password is not None
    assert s.kafka_sasl_password.get_secret_value() == "p@ss word "
    assert s.secret_key is not None and s.secret_key.get_secret_value() == "awk1:" + "A" * 43


def test_a_value_and_its_file_together_or_a_missing_file_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text("from-file")
    text = refused(
        monkeypatch,
        kafka_sasl_password="from-env",
        kafka_sasl_password_file=str(tmp_path / "password"),
    )
    assert "set WEBHOOKS_KAFKA_SASL_PASSWORD or WEBHOOKS_KAFKA_SASL_PASSWORD_FILE" in text
    assert "from-env" not in text and "from-file" not in text
    text = refused(monkeypatch, api_token_file=str(tmp_path / "absent"))
    assert "WEBHOOKS_API_TOKEN_FILE: cannot read" in text and "No such file" in text


@settings(max_examples=60, deadline=None)
@given(tail=st.text(min_size=1, max_size=40))
def test_no_settings_error_ever_echoes_a_secret(tail: str) -> None:
    secret = "zq#" + tail  # never a substring of the message by chance
    with pytest.raises(SettingsError) as info:
        load_settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_password=secret,
            kafka_oauth_client_secret=secret,
            secret_key=secret,
            input_partitions=0,
        )
    text = str(info.value)
    assert "WEBHOOKS_INPUT_PARTITIONS" in text
    assert secret not in text and repr(secret)[1:-1] not in text


def plain_settings(**values: Any) -> Settings:
    return Settings.model_validate(values)


SCRAM = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-256",
    "kafka_sasl_username": "svc",
    "kafka_sasl_password": "pw",
}


@pytest.mark.parametrize(
    ("values", "exc", "words"),
    [
        (
            SCRAM,
            SaslAuthenticationFailed("Authentication failed: invalid credentials"),
            "refused the SCRAM-SHA-256 credentials of 'svc'",
        ),
        (SCRAM, UnsupportedSaslMechanismError("not enabled"), "WEBHOOKS_KAFKA_SASL_MECHANISM"),
        (SCRAM, IllegalSaslStateError(), "does not do SASL on this listener"),
        (
            SCRAM,
            KafkaTokenError("Kafka OAuth token endpoint x answered HTTP 401"),
            "answered HTTP 401",
        ),
        ({}, ConnectionRefusedError(111, "refused"), "nothing listens at b:9092"),
        ({}, TimeoutError(), "did not answer within"),
        ({}, KafkaConnectionError("Connection at b:9092 closed"), "is it a TLS listener?"),
        (
            {"kafka_security_protocol": "SSL"},
            ConnectionResetError(),
            "is it a plaintext listener?",
        ),
    ],
)
def test_failures_are_explained_with_the_setting_to_look_at(
    values: dict[str, str], exc: BaseException, words: str
) -> None:
    assert words in explain(plain_settings(**values), "b:9092", exc)


def test_tls_failures_tell_an_untrusted_broker_from_a_refused_client_certificate() -> None:
    s = plain_settings(kafka_security_protocol="SSL")
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    assert "is not trusted: unable to get local issuer" in explain(s, "b:1", untrusted)
    alert = ssl.SSLError(1, "alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    closed = KafkaConnectionError("Connection at b:1 closed")
    closed.__cause__ = alert
    assert "rejected the TLS client certificate" in explain(s, "b:1", closed)
