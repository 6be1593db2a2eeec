"""Reading jobs back: the stored configs (`load_jobs`, `get_job`), the workers' status
records, and what `jobs list`, `jobs show` and the API's GET routes report from them (state
across live workers, counters, backlog, backfill progress). Nothing here writes."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from app.domain.job_signing import signing_summary
from app.domain.status_record import decode_status_record, split_status_key
from app.domain.status_summary import config_version, stale_after, summarize_status
from app.domain.stored_job import StoredJob
from app.settings import Settings
from app.topic_catalog import delivery_group, load_catalog
from app.transport.kafka import read_compacted
from app.transport.kafka_admin import consumer_lag, consumer_lags, ensure_topics
from app.usecases.errors import NotFound


async def load_compacted(settings: Settings, topic: str) -> dict[str, bytes]:
    """Latest value per key of a compacted topic (keys as text); deleted keys left out."""
    view = await read_compacted(settings, topic)
    return {key.decode(errors="replace"): value for key, value in view.items()}


async def ensure_declared_topics(settings: Settings) -> None:
    """Create the declared topics that are missing (idempotent), so `jobs apply` and `auth
    apply` work before any worker ran, also where brokers do not create topics on use."""
    await ensure_topics(settings, load_catalog(settings))


async def load_jobs(settings: Settings) -> dict[str, StoredJob]:
    out = {}
    for key, value in (await load_compacted(settings, settings.jobs_topic)).items():
        try:
            out[key] = StoredJob.from_record(orjson.loads(value))
        except (ValueError, TypeError):
            continue  # not written by this tool; the worker logs and skips it too
    return out


async def backfill_progress(settings: Settings, job_id: str) -> dict[str, Any] | None:
    records = await load_compacted(settings, settings.backfill_progress_topic)
    raw = records.get(job_id)
    return orjson.loads(raw) if raw else None


async def load_all_statuses(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Job id -> the latest status record of each worker (tombstoned ones left out)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, value in (await load_compacted(settings, settings.status_topic)).items():
        parts = split_status_key(key)
        doc = decode_status_record(value)
        if parts is not None and doc is not None:
            out.setdefault(parts[0], []).append(doc)
    return out


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job in a list: its real state (from live workers), the wanted one, counters."""

    id: str
    type: str
    label: str
    state: str
    wanted: str
    since: str | None
    counters: dict[str, int]
    last_error: dict[str, Any] | None
    backlog: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


async def list_jobs(settings: Settings, with_backlog: bool = False) -> list[JobRow]:
    """Every job with its state; `with_backlog` adds each queue's undelivered events."""
    jobs = await load_jobs(settings)
    statuses = await load_all_statuses(settings)
    now, stale = time.time(), stale_after(settings.status_heartbeat_s)
    backlogs: list[int | None] = [None] * len(jobs)
    ordered = sorted(jobs.items())
    if with_backlog and ordered:
        backlogs = await consumer_lags(
            settings,
            [(job.config.queue_topic, delivery_group(settings, job_id)) for job_id, job in ordered],
        )
    rows = []
    for (job_id, job), backlog in zip(ordered, backlogs, strict=True):
        summary = summarize_status(job.desired_state, statuses.get(job_id, []), now, stale)
        rows.append(
            JobRow(
                id=job_id,
                type=job.config.type,
                label=job.config.label,
                state=summary["state"],
                wanted=job.desired_state,
                since=summary.get("since"),
                counters=summary["counters"],
                last_error=summary.get("last_error"),
                backlog=backlog,
            )
        )
    return rows


async def get_job(settings: Settings, job_id: str) -> StoredJob:
    job = (await load_jobs(settings)).get(job_id)
    if job is None:
        raise NotFound("job id", "id", f"no job {job_id!r} (see `webhooks jobs list`)")
    return job


async def load_statuses(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    """The latest status record of each worker that delivers `job_id`."""
    return (await load_all_statuses(settings)).get(job_id, [])


async def job_report(settings: Settings, job_id: str) -> dict[str, Any]:
    """The job's state across workers, counters, backlog, backfill progress and config
    (no secrets: a signed job says how many signing secrets it has)."""
    job = await get_job(settings, job_id)
    statuses = await load_statuses(settings, job_id)
    backlog = await consumer_lag(settings, job.config.queue_topic, delivery_group(settings, job_id))
    now, stale = time.time(), stale_after(settings.status_heartbeat_s)
    doc = {
        **summarize_status(job.desired_state, statuses, now, stale),
        "version": config_version(job.config.to_json_dict()),
        "backlog": backlog,
        "backfill": await backfill_progress(settings, job_id),
        "updated_at": job.updated_at,
        "config": job.config.to_json_dict(),
    }
    if job.config.signed:
        doc["signing"] = signing_summary(job.signing_keys, now)
    return doc
