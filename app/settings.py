"""The one settings object: every knob comes from a WEBHOOKS_* environment variable.

Validated once at start-up, so a typo in a CIDR or a negative duration stops the worker
with a message instead of misbehaving later.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service settings; each field maps to WEBHOOKS_<FIELD NAME>."""

    model_config = SettingsConfigDict(env_prefix="WEBHOOKS_", extra="ignore", frozen=True)

    kafka_bootstrap: str = "localhost:9092"
    """Kafka bootstrap servers, comma separated."""
    input_topic: str = "audience-events"
    """Topic of input records (contract section 4)."""
    jobs_topic: str = "webhook-jobs"
    """Compacted topic of job configs."""
    authorizations_topic: str = "webhook-authorizations"
    """Compacted topic of authorizations (secrets encrypted)."""
    deadletter_topic: str = "webhook-deadletter"
    """Where omitted and invalid events go, with the reason."""
    enrichment_topic: str = "webhook_enrichment"
    """Default output stream of enrichment jobs."""
    status_topic: str = "webhook-job-status"
    """Compacted topic of job statuses, one record per job and worker."""
    job_log_topic: str = "webhook-job-logs"
    """Job logs (`webhooks jobs logs ID`): key = job id; kept 7 days or 256 MiB a partition."""
    worker_id: str = Field(default_factory=socket.gethostname)
    """This worker's name in job statuses; keep it stable across restarts."""
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
    queue_partitions: int = Field(default=8, ge=1, le=1024)
    """Partitions of each job's queue topic."""
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
    """Bearer token required by the REST API when set."""
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

    @field_validator("allowed_private_nets")
    @classmethod
    def _valid_cidrs(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {part!r} ({exc})") from exc
        return value

    @property
    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        parts = filter(None, (p.strip() for p in self.allowed_private_nets.split(",")))
        return [ipaddress.ip_network(p, strict=False) for p in parts]

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
