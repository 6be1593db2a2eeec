"""The one settings object: every knob comes from a WEBHOOKS_* environment variable.

Validated once at start-up, so a typo in a CIDR or a negative duration stops the worker
with a message instead of misbehaving later.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.setting_files import (
    EMPTY_CREDENTIAL,
    FILE_SETTINGS,
    SECRET_SETTINGS,
    env_name,
    read_setting_files,
)

__all__ = ["FILE_SETTINGS", "SECRET_SETTINGS", "Settings", "SettingsError", "env_name"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


def _comma_parts(text: str) -> list[str]:
    """The non-empty parts of a comma-separated setting, stripped."""
    return [part.strip() for part in text.split(",") if part.strip()]


class SettingsError(ValueError):
    """The WEBHOOKS_* environment is invalid; the message names every wrong variable."""


class Settings(BaseSettings):
    """Service settings; each field maps to WEBHOOKS_<FIELD NAME>."""

    model_config = SettingsConfigDict(env_prefix="WEBHOOKS_", extra="ignore", frozen=True)

    kafka_bootstrap: str = "localhost:9092"
    """Kafka bootstrap servers, comma separated."""
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    """How every Kafka client connects: PLAINTEXT, SSL (TLS, with a client certificate for
    mTLS), SASL_PLAINTEXT or SASL_SSL."""
    kafka_ssl_ca_file: FilePath | None = None
    """CA certificates (PEM) that sign the brokers' certificates; default: the system's."""
    kafka_ssl_cert_file: FilePath | None = None
    """Client certificate (PEM, may hold the chain) for brokers that require mTLS."""
    kafka_ssl_key_file: FilePath | None = None
    """Private key (PEM) of that certificate."""
    kafka_ssl_key_password: SecretStr | None = None
    """Password of that key when it is encrypted."""
    kafka_ssl_check_hostname: bool = True
    """Check that a broker's certificate names the host connected to."""
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    """SASL mechanism with SASL_PLAINTEXT / SASL_SSL."""
    kafka_sasl_username: str | None = None
    """User name for PLAIN and SCRAM-SHA-256/512."""
    kafka_sasl_password: SecretStr | None = None
    """Password for PLAIN and SCRAM-SHA-256/512."""
    kafka_oauth_token_url: str | None = None
    """OAUTHBEARER: the token endpoint (OAuth 2.0 client credentials grant)."""
    kafka_oauth_client_id: str | None = None
    """OAUTHBEARER: the client id."""
    kafka_oauth_client_secret: SecretStr | None = None
    """OAUTHBEARER: the client secret."""
    kafka_oauth_scope: str = ""
    """OAUTHBEARER: scope to ask for (space separated); empty asks for none."""
    kafka_oauth_client_auth: Literal["basic", "body"] = "basic"
    """OAUTHBEARER: how the client authenticates to the token endpoint (RFC 6749 2.3.1)."""
    kafka_oauth_extensions: str = ""
    """OAUTHBEARER: SASL extensions sent with the token, `key=value` comma separated
    (e.g. `logicalCluster=lkc-1,identityPoolId=pool-2` for Confluent Cloud)."""
    kafka_oauth_ca_file: FilePath | None = None
    """CA certificates (PEM) of the token endpoint; default: the system's."""
    kafka_sasl_username_file: Path | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_key_password_file: Path | None = None
    kafka_oauth_client_id_file: Path | None = None
    kafka_oauth_client_secret_file: Path | None = None
    secret_key_file: Path | None = None
    secret_key_previous_file: Path | None = None
    api_token_file: Path | None = None
    input_topic: str = "audience-events"
    """Topic of input records (contract section 4)."""
    jobs_topic: str = "webhook-jobs"
    """Compacted topic of job configs."""
    authorizations_topic: str = "webhook-authorizations"
    """Compacted topic of authorizations (secrets encrypted)."""
    deadletter_topic: str = "webhook-deadletter"
    """Where omitted and invalid events go, with the reason."""
    deadletter_retention_days: float = Field(default=7.0, gt=0, le=3650)
    """How long the dead-letter topic keeps records (its `retention.ms`, set when topics are
    created and by `webhooks topics create` on an existing topic). Dead letters hold whole
    events (profile data): Kafka cannot delete one record of such a topic, so this is how
    long an erased user's data can stay there. The erasures topic
    (`<app id>-erasures`) is kept as long."""
    enrichment_topic: str = "webhook_enrichment"
    """Default output stream of enrichment jobs."""
    status_topic: str = "webhook-job-status"
    """Compacted topic of job statuses, one record per job and worker."""
    job_log_topic: str = "webhook-job-logs"
    """Job logs (`webhooks jobs logs ID`): key = job id; kept 7 days or 256 MiB a partition."""
    worker_id: str = Field(default_factory=socket.gethostname)
    """This worker's name in job statuses; keep it stable across restarts."""
    processes: int | None = Field(default=None, ge=1, le=256)
    """Worker processes `webhooks worker` runs side by side (one per core); default: the
    cores this machine or container may use (CPU affinity and cgroup quota)."""
    siblings: int = Field(default=1, ge=1, le=256)
    """Set by `webhooks worker` for each of its processes (not an operator setting): how
    many processes it started, so the first to join the delivery slots leaves the others
    their share instead of taking every job and handing half of them over at once."""
    backfills_topic: str = "webhook-backfills"
    """Compacted topic of backfill requests, key = job id."""
    backfill_progress_topic: str = "webhook-backfill-progress"
    """Compacted topic of backfill progress, key = job id."""
    backfill_partition_pause_s: float = Field(default=0.0, ge=0, le=3600)
    """Pause between state partitions during a backfill, to spread its load on the broker."""
    app_id: str = "audience-webhooks"
    """Faust application id: the router's consumer group and the prefix of its changelogs."""
    input_partitions: int = Field(default=8, ge=1, le=1024)
    """Partitions of the input topic; the router's state table is co-partitioned with it."""
    status_heartbeat_s: float = Field(default=5.0, gt=0, le=300)
    """How often a worker rewrites its status record of each job, even unchanged; a worker
    silent for 3 heartbeats drops out of `webhooks jobs show` and `jobs list`."""
    queue_partitions: int = Field(default=1, ge=1, le=1024)
    """Partitions of each new job's queue topic. One is enough: a job is delivered whole by
    one worker process (its delivery slot's holder), and per-user order needs no more."""
    topic_replication: int = Field(default=1, ge=1, le=16)
    """Replication factor of the topics the service creates (3 on a production cluster)."""
    secret_key: SecretStr | None = None
    """Key that encrypts stored secrets: `awk1:` + 32 random bytes in URL-safe base64
    (`webhooks secret-key generate`); the AES-256-GCM key is derived from it with
    HKDF-SHA256 (`app/domain/secrets.py`). A legacy passphrase of 16+ characters still works."""
    secret_key_previous: SecretStr | None = None
    """Earlier keys, comma separated, used only to read secrets (key rotation)."""
    ca_bundle: Path | None = None
    """Extra CA certificates (PEM) to trust for webhook TLS."""
    allowed_private_nets: str = ""
    """Comma-separated CIDRs that webhooks may reach although private or loopback."""
    api_token: SecretStr | None = None
    """Bearer token the HTTP API (`webhooks api`) requires; without one the API serves only
    on a loopback address."""
    api_host: str = "127.0.0.1"
    """Address `webhooks api` listens on."""
    api_port: int = Field(default=8080, ge=0, le=65535)
    """Port of `webhooks api` (JSON API under /v1 and the dashboard at /)."""
    data_dir: Path = Path(".cache/worker-data")
    """Faust's local data directory."""
    http_port: int = Field(default=0, ge=0, le=65535)
    """Port of the worker's /healthz, /readyz and /metrics (plain HTTP); 0 = off."""
    http_host: str = "0.0.0.0"
    """Address that port listens on."""
    log_format: Literal["text", "json"] = "text"
    """`json`: one JSON object a line (time, level, logger, message, job_id, event_ids)."""
    batch_window_s: float = Field(default=1.0, gt=0, le=60)
    """How long a batch waits for more events after its first one."""
    retry_backoff_initial_s: float = Field(default=0.5, gt=0)
    """First delay between retries of one request."""
    retry_backoff_max_s: float = Field(default=30.0, gt=0)
    """Largest delay between retries of one request."""
    job_retry_initial_s: float = Field(default=60.0, gt=0)
    """First wait of the job retry schedule after a job enters `error`."""
    job_retry_max_s: float = Field(default=3600.0, gt=0)
    """Cap of the job retry schedule."""
    job_failed_after_s: float = Field(default=36000.0, gt=0)
    """A job whose errors persist this long becomes `failed`."""
    retry_after_max_s: float = Field(default=86400.0, gt=0)
    """Longest sleep a Retry-After answer can impose."""
    kafka_session_timeout_s: float = Field(default=10.0, ge=3, le=300)
    """How soon the group notices a worker that died (its partitions move after this)."""
    http_connect_timeout_s: float = Field(default=10.0, gt=0)
    """Webhook TCP+TLS connect timeout."""
    http_total_timeout_s: float = Field(default=30.0, gt=0)
    """Webhook request total timeout."""
    template_timeout_s: float = Field(default=0.5, gt=0, le=60)
    """Longest a Jsonnet template may run for one event; past it the event is dead-lettered."""
    template_processes: int = Field(default=2, ge=1, le=64)
    """Child processes that evaluate Jsonnet templates (a job uses one at a time)."""

    @model_validator(mode="before")
    @classmethod
    def _read_setting_files(cls, data: Any) -> Any:
        """WEBHOOKS_<NAME>_FILE: the value of <NAME> is that file's content."""
        return read_setting_files(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _coherent_kafka_security(self) -> Settings:
        """Settings that the chosen protocol and mechanism need, or would silently ignore."""
        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        tls = protocol in ("SSL", "SASL_SSL")
        sasl = protocol.startswith("SASL_")
        problems: list[str] = []
        tls_only = ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file")
        for name in tls_only if not tls else ():
            if getattr(self, name) is not None:
                problems.append(f"{env_name(name)} is only used with SSL or SASL_SSL")
        if self.kafka_ssl_key_file is not None and self.kafka_ssl_cert_file is None:
            problems.append("WEBHOOKS_KAFKA_SSL_KEY_FILE needs WEBHOOKS_KAFKA_SSL_CERT_FILE")
        if self.kafka_ssl_key_password is not None and self.kafka_ssl_cert_file is None:
            problems.append("WEBHOOKS_KAFKA_SSL_KEY_PASSWORD needs WEBHOOKS_KAFKA_SSL_CERT_FILE")
        user_pass = ("kafka_sasl_username", "kafka_sasl_password")
        oauth = ("kafka_oauth_token_url", "kafka_oauth_client_id", "kafka_oauth_client_secret")
        if not sasl:
            for name in (*user_pass, *oauth):
                if getattr(self, name) is not None:
                    problems.append(
                        f"{env_name(name)} is only used with SASL_PLAINTEXT or SASL_SSL"
                    )
        elif mechanism == "OAUTHBEARER":
            missing = [env_name(n) for n in oauth if not getattr(self, n)]
            if missing:
                problems.append(f"OAUTHBEARER needs {', '.join(missing)}")
            url = self.kafka_oauth_token_url
            if url and urlsplit(url).scheme not in ("https", "http"):
                problems.append(f"WEBHOOKS_KAFKA_OAUTH_TOKEN_URL is not an http(s) URL: {url!r}")
            for part in _comma_parts(self.kafka_oauth_extensions):
                if "=" not in part:
                    problems.append(f"WEBHOOKS_KAFKA_OAUTH_EXTENSIONS: {part!r} is not key=value")
        else:
            missing = [env_name(n) for n in user_pass if not getattr(self, n)]
            if missing:
                problems.append(f"SASL mechanism {mechanism} needs {', '.join(missing)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator(*FILE_SETTINGS, mode="after")
    @classmethod
    def _not_blank(cls, value: SecretStr | str | None) -> SecretStr | str | None:
        """A credential that is set is never empty: an empty API token must not mean "no
        token", nor an empty password "no password" (issue 20)."""
        if value is None:
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not text.strip():
            raise ValueError(EMPTY_CREDENTIAL)
        return value

    @field_validator("allowed_private_nets")
    @classmethod
    def _valid_cidrs(cls, value: str) -> str:
        for part in _comma_parts(value):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {part!r} ({exc})") from exc
        return value

    @property
    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(p, strict=False) for p in _comma_parts(self.allowed_private_nets)
        ]

    @property
    def oauth_extensions(self) -> dict[str, str]:
        """WEBHOOKS_KAFKA_OAUTH_EXTENSIONS as a map (validated as `key=value` parts)."""
        return dict(part.split("=", 1) for part in _comma_parts(self.kafka_oauth_extensions))

    @property
    def bootstrap_servers(self) -> list[str]:
        return _comma_parts(self.kafka_bootstrap)


def describe_errors(exc: ValidationError) -> str:
    """One line naming every wrong WEBHOOKS_* variable (secrets never echoed)."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = [str(x) for x in error["loc"]]
        if not loc:
            parts.append(message)
            continue
        field = loc[0]
        shown = "" if field in SECRET_SETTINGS else f" (got {str(error.get('input'))[:80]!r})"
        parts.append(f"{env_name(field)}: {message}{shown}")
    return "invalid settings: " + "; ".join(parts)


def settings_from_env(env: dict[str, str]) -> Settings:
    """Settings from WEBHOOKS_* variables given as a mapping (a child process's environment),
    not from this process's environment."""
    return Settings.model_validate({k.removeprefix("WEBHOOKS_").lower(): v for k, v in env.items()})


def load_settings(**values: Any) -> Settings:
    """Settings from the environment (and `values`), or SettingsError naming what is wrong."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return load_settings()
