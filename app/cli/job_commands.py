"""What `webhooks jobs ...` does: validate, store on `webhook-jobs`, read back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.files import load_documents
from app.domain.deadletters import utc_now_rfc3339
from app.domain.destinations import Network
from app.domain.errors import ConfigError, FieldProblem
from app.domain.jobs import JobConfig, StoredJob, parse_job_config
from app.domain.status_summary import summarize_status
from app.settings import Settings
from app.topic_catalog import enrichment_topic_spec, queue_topic_spec
from app.transport.kafka import consumer_lag, ensure_topics, read_to_end, write_record


async def load_compacted(settings: Settings, topic: str) -> dict[str, bytes]:
    """Latest value per key of a compacted topic; deleted keys left out."""
    latest: dict[str, bytes | None] = {}
    for key, value, _ in await read_to_end(settings, topic):
        if key is not None:
            latest[key.decode(errors="replace")] = value
    return {k: v for k, v in latest.items() if v is not None}


async def load_jobs(settings: Settings) -> dict[str, StoredJob]:
    out = {}
    for key, value in (await load_compacted(settings, settings.jobs_topic)).items():
        try:
            out[key] = StoredJob.from_record(orjson.loads(value))
        except (ValueError, TypeError):
            continue  # not written by this tool; the worker logs and skips it too
    return out


def validate_documents(
    docs: list[object], allowed: Sequence[Network] | None = None
) -> list[JobConfig]:
    """Every document valid or a ConfigError naming every wrong field of every document.

    With `allowed` (the settings' allowed networks), destinations are judged too (see
    `parse_job_config`)."""
    problems: list[FieldProblem] = []
    configs: list[JobConfig] = []
    for i, doc in enumerate(docs):
        try:
            configs.append(parse_job_config(doc, allowed=allowed))
        except ConfigError as exc:
            prefix = f"[{i}]." if len(docs) > 1 else ""
            problems.extend(FieldProblem(prefix + p.field, p.rule) for p in exc.problems)
    if problems:
        raise ConfigError("job config", problems)
    return configs


async def apply(settings: Settings, file: Path) -> list[str]:
    configs = validate_documents(load_documents(file), settings.allowed_networks)
    auth_ids = set(await load_compacted(settings, settings.authorizations_topic))
    missing = [
        FieldProblem(
            "authorization", f"no authorization {c.authorization!r} (see `webhooks auth list`)"
        )
        for c in configs
        if c.authorization and c.authorization not in auth_ids
    ]
    if missing:
        raise ConfigError("job config", missing)
    existing = await load_jobs(settings)
    await ensure_topics(settings, [queue_topic_spec(settings, c.queue_topic) for c in configs])
    streams = {c.stream for c in configs if not c.is_triggers}
    await ensure_topics(settings, [enrichment_topic_spec(settings, s) for s in streams])
    out = []
    for config in configs:
        before = existing.get(config.id)
        stored = StoredJob(
            config=config,
            desired_state=before.desired_state if before else "running",
            updated_at=utc_now_rfc3339(),
        )
        await write_record(
            settings, settings.jobs_topic, config.id, orjson.dumps(stored.to_record())
        )
        verb = "updated" if before else "created"
        out.append(f"{verb} job {config.id} ({config.type}, {config.label!r})")
        if before is None and config.existing_users:
            await request_backfill(settings, config.id)
            out.append(f"backfill of existing users requested for job {config.id}")
    return out


async def request_backfill(settings: Settings, job_id: str) -> str:
    """Queue a backfill of the job's current members; returns the request id."""
    request_id = uuid.uuid4().hex
    doc = {"id": request_id, "job_id": job_id, "requested_at": time.time()}
    await write_record(settings, settings.backfills_topic, job_id, orjson.dumps(doc))
    return request_id


async def backfill_progress(settings: Settings, job_id: str) -> dict[str, Any] | None:
    records = await load_compacted(settings, settings.backfill_progress_topic)
    raw = records.get(job_id)
    return orjson.loads(raw) if raw else None


async def list_jobs(settings: Settings) -> list[str]:
    jobs = await load_jobs(settings)
    if not jobs:
        return ["no jobs"]
    lines = [f"{'ID':<34} {'TYPE':<18} {'STATE':<8} LABEL"]
    for job_id, job in sorted(jobs.items()):
        lines.append(
            f"{job_id:<34} {job.config.type:<18} {job.desired_state:<8} {job.config.label}"
        )
    return lines


async def follow_backfill(settings: Settings, job_id: str, request_id: str) -> None:
    """A progress bar until the backfill is done (Ctrl-C leaves it running in the workers)."""
    with Progress(
        TextColumn("backfill"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} partitions"),
        TextColumn("{task.fields[members]} members sent"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("backfill", total=None, members=0)
        while True:
            progress = await backfill_progress(settings, job_id)
            if progress and progress.get("request_id") == request_id:
                bar.update(
                    task,
                    total=progress["total_partitions"] or None,
                    completed=len(progress["partitions_done"]),
                    members=progress["members_sent"],
                )
                if progress["state"] == "done":
                    return
            await asyncio.sleep(0.5)


async def get_job(settings: Settings, job_id: str) -> StoredJob:
    job = (await load_jobs(settings)).get(job_id)
    if job is None:
        raise ConfigError(
            "job id", [FieldProblem("id", f"no job {job_id!r} (see `webhooks jobs list`)")]
        )
    return job


async def load_statuses(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    """The latest status record of each worker that delivers `job_id`."""
    prefix = f"{job_id}/"
    records = await load_compacted(settings, settings.status_topic)
    out = []
    for key, value in records.items():
        if key.startswith(prefix):
            with contextlib.suppress(ValueError):
                out.append(orjson.loads(value))
    return out


async def show(settings: Settings, job_id: str) -> str:
    job = await get_job(settings, job_id)
    statuses = await load_statuses(settings, job_id)
    backlog = await consumer_lag(
        settings, job.config.queue_topic, f"{settings.app_id}-delivery-{job_id}"
    )
    doc = {
        **summarize_status(job.desired_state, statuses),
        "backlog": backlog,
        "backfill": await backfill_progress(settings, job_id),
        "updated_at": job.updated_at,
        "config": job.config.to_json_dict(),
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()


async def set_desired_state(settings: Settings, job_id: str, desired: str) -> str:
    """`stop` or `resume`; resuming a running job still restarts an erroring/failed one."""
    job = await get_job(settings, job_id)
    if job.desired_state == desired == "stopped":
        return f"job {job_id} is already stopped"
    update: dict[str, Any] = {"desired_state": desired, "updated_at": utc_now_rfc3339()}
    if desired == "running":
        update["resumed_at"] = time.time()
    stored = job.model_copy(update=update)
    await write_record(settings, settings.jobs_topic, job_id, orjson.dumps(stored.to_record()))
    return f"job {job_id}: {desired}"
