"""The worker's Prometheus metrics (`/metrics`), one registry per process.

Names follow Prometheus conventions: counters end in `_total`, durations are in seconds,
and every per-job series has the label `job_id`. The code records as things happen
(delivery, routing, token fetches). Gauges that describe a moment (backlog, state, router
lag, state entries) are set by the services when they update their own view of them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_DELIVERED = Counter(
    "webhooks_events_delivered_total",
    "Events delivered (answered 2xx), per job.",
    ["job_id"],
    registry=REGISTRY,
)
EVENTS_OMITTED = Counter(
    "webhooks_events_omitted_total",
    "Events dead-lettered instead of delivered (not retried, refused, unusable), per job.",
    ["job_id"],
    registry=REGISTRY,
)
REQUESTS = Counter(
    "webhooks_requests_total",
    "Webhook request attempts by outcome: 2xx, 3xx, 4xx, 5xx, or error (no answer).",
    ["job_id", "status_class"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "webhooks_retries_total",
    "Webhook request attempts that failed and are retried after a backoff, per job.",
    ["job_id"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "webhooks_request_duration_seconds",
    "Time of one webhook request attempt, until its answer or its error.",
    ["job_id"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
BATCH_EVENTS = Histogram(
    "webhooks_batch_size_events",
    "Events per webhook request.",
    ["job_id"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
    registry=REGISTRY,
)
BACKLOG = Gauge(
    "webhooks_job_backlog_records",
    "Queue records of the job not yet committed, on the partitions this worker owns.",
    ["job_id"],
    registry=REGISTRY,
)
JOB_STATE = Gauge(
    "webhooks_job_state",
    "1 for the job's current state on this worker, 0 for the others.",
    ["job_id", "state"],
    registry=REGISTRY,
)
INPUT_ROUTED = Counter(
    "webhooks_input_records_routed_total",
    "Input records routed (whatever they caused).",
    registry=REGISTRY,
)
INPUT_DEAD_LETTERED = Counter(
    "webhooks_input_records_dead_lettered_total",
    "Input records dead-lettered as invalid or too large.",
    registry=REGISTRY,
)
USERS_ERASED = Counter(
    "webhooks_users_erased_total",
    "Users erased by a tombstone on the input topic: `known` had a state here, `unknown` did "
    "not (never seen, erased already, or the tombstone went to another partition).",
    ["state"],
    registry=REGISTRY,
)
ERASURE_EXITS = Counter(
    "webhooks_erasure_exits_queued_total",
    "Exit events queued for erased users (one per job that sends exits and audience).",
    registry=REGISTRY,
)
ROUTER_LAG = Gauge(
    "webhooks_router_lag_records",
    "Input records not yet routed on the input partitions this worker owns.",
    registry=REGISTRY,
)
STATE_ENTRIES = Gauge(
    "webhooks_state_entries",
    "Users (and markers) in the router's state on this worker.",
    registry=REGISTRY,
)
TOKEN_FETCHES = Counter(
    "webhooks_oauth_token_fetches_total",
    "OAuth 2.0 token requests by outcome (ok or error).",
    ["outcome"],
    registry=REGISTRY,
)

STATES = ("running", "sleeping", "error", "failed", "stopped")


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


def set_job_state(job_id: str, state: str) -> None:
    for name in STATES:
        JOB_STATE.labels(job_id, name).set(1.0 if name == state else 0.0)


def job_left(job_id: str) -> None:
    """A job now delivered by another worker process: its gauges (state, backlog) leave this
    process's `/metrics` (the other one reports them); its counters stay, as history."""
    for metric in (BACKLOG, JOB_STATE):
        for labels in _label_sets(metric):
            if labels[0] == job_id:
                metric.remove(*labels)


def forget_job(job_id: str) -> None:
    """A deleted job's series disappear from `/metrics`."""
    per_job: tuple[Counter | Gauge | Histogram, ...] = (
        EVENTS_DELIVERED,
        EVENTS_OMITTED,
        RETRIES,
        REQUEST_SECONDS,
        BATCH_EVENTS,
        BACKLOG,
        REQUESTS,
        JOB_STATE,
    )
    for metric in per_job:
        for labels in _label_sets(metric):
            if labels[0] == job_id:
                metric.remove(*labels)


def _label_sets(metric: Counter | Gauge | Histogram) -> list[tuple[str, ...]]:
    # prometheus-client has no public listing of a metric's children; they are kept by
    # label-value tuple in `_metrics` (stable since 0.4). The one private use here.
    return [tuple(labels) for labels in metric._metrics]


def exposition() -> bytes:
    """The text format of every metric."""
    return generate_latest(REGISTRY)
