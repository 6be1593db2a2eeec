"""Job use cases: validate and store on `webhook-jobs`, read back with their state, stop,
resume, backfill, delete, rotate a signing secret. They return models; the CLI and the API
format them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from app.domain.backfill import backfill_request
from app.domain.destinations import Network
from app.domain.errors import ConfigError, FieldProblem
from app.domain.job_signing import keys_at_apply, open_keys, seal_keys, signing_summary
from app.domain.jobs import (
    JobConfig,
    SealedSigningKey,
    StoredJob,
    parse_job_config,
)
from app.domain.secrets import SecretKeyError
from app.domain.signing import DEFAULT_OVERLAP_S, generate_secret, rotate
from app.domain.status_record import decode_status_record, split_status_key
from app.domain.status_summary import (
    config_version,
    live_records,
    live_workers,
    stale_after,
    summarize_status,
    workers_behind,
)
from app.domain.timefmt import rfc3339, utc_now_rfc3339
from app.settings import Settings
from app.topic_catalog import (
    delivery_group,
    enrichment_topic_spec,
    load_catalog,
    queue_topic_spec,
)
from app.transport.kafka import read_compacted, write_record
from app.transport.kafka_admin import (
    consumer_lag,
    consumer_lags,
    delete_consumer_group,
    delete_topic,
    ensure_topics,
)
from app.usecases.errors import CommandFailed as CommandFailed
from app.usecases.errors import NotFound
from app.usecases.keys import KeyProblem, secret_box

DELETE_WAIT_S = 60.0
"""How long `jobs delete` waits for the live workers to drop the job."""


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


@dataclass(frozen=True, slots=True)
class AppliedJob:
    """One job `apply_documents` stored; `signing_secret` is set only when it was generated
    now (shown once)."""

    id: str
    type: str
    label: str
    created: bool
    signing_secret: str | None = None
    backfill_requested: bool = False

    def lines(self) -> list[str]:
        verb = "created" if self.created else "updated"
        out = [f"{verb} job {self.id} ({self.type}, {self.label!r})"]
        if self.signing_secret is not None:
            out.append(
                f"signing secret of job {self.id} (shown once; give it to the "
                f"receiver to verify `webhook-signature`): {self.signing_secret}"
            )
        if self.backfill_requested:
            out.append(f"backfill of existing users requested for job {self.id}")
        return out


async def apply_documents(settings: Settings, docs: list[object]) -> list[AppliedJob]:
    """Validate `docs` (all or nothing: ConfigError naming every wrong field) and store
    them."""
    configs = validate_documents(docs, settings.allowed_networks)
    await ensure_declared_topics(settings)
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
    box = secret_box(settings, required=any(c.signed for c in configs))
    out = []
    for config in configs:
        before = existing.get(config.id)
        keys: tuple[SealedSigningKey, ...] = ()
        secret: str | None = None
        if config.signed:
            assert box is not None
            previous = before.signing_keys if before else ()
            keys, secret = keys_at_apply(config.id, previous, box, time.time())
        stored = StoredJob(
            config=config,
            desired_state=before.desired_state if before else "running",
            updated_at=utc_now_rfc3339(),
            signing_keys=keys,
        )
        await write_record(
            settings, settings.jobs_topic, config.id, orjson.dumps(stored.to_record())
        )
        backfill = before is None and config.existing_users
        if backfill:
            await request_backfill(settings, config.id)
        out.append(
            AppliedJob(config.id, config.type, config.label, before is None, secret, backfill)
        )
    return out


async def rotate_signing_secret(
    settings: Settings, job_id: str, overlap_s: float = DEFAULT_OVERLAP_S
) -> Rotation:
    """A new signing secret for a signed job, shown once; the current one keeps signing
    beside it for `overlap_s` seconds."""
    job = await get_job(settings, job_id)
    if not job.config.signed:
        raise CommandFailed(
            f"job {job_id} does not sign requests (set `signed: true` and apply it)"
        )
    box = secret_box(settings, required=True)
    assert box is not None
    try:
        keys = open_keys(job_id, job.signing_keys, box)
    except SecretKeyError as exc:
        raise KeyProblem(f"the signing secrets of job {job_id} cannot be read: {exc}") from None
    secret = generate_secret()
    rotated = rotate(keys, secret, time.time(), overlap_s)
    sealed = seal_keys(job_id, rotated, box)
    stored = job.model_copy(update={"signing_keys": sealed, "updated_at": utc_now_rfc3339()})
    await write_record(settings, settings.jobs_topic, job_id, orjson.dumps(stored.to_record()))
    return Rotation(
        job_id, secret, [str(rfc3339(k.expires_at)) for k in rotated if k.expires_at is not None]
    )


@dataclass(frozen=True, slots=True)
class Rotation:
    """A new signing secret (shown once) and until when the previous ones still sign."""

    job_id: str
    secret: str
    previous_until: list[str]

    def lines(self) -> list[str]:
        out = [f"new signing secret of job {self.job_id} (shown once): {self.secret}"]
        if self.previous_until:
            out.append(
                f"the previous secret also signs until {max(self.previous_until)} "
                f"({len(self.previous_until)} previous secret(s) still valid)"
            )
        return out


async def backfill(settings: Settings, job_id: str) -> str:
    """Backfill an existing job's current members (NotFound for an unknown job); returns
    the request id, which its progress in `backfill_progress` carries."""
    await get_job(settings, job_id)
    return await request_backfill(settings, job_id)


async def request_backfill(settings: Settings, job_id: str) -> str:
    """Queue a backfill of the job's current members; returns the request id."""
    request_id = uuid.uuid4().hex
    doc = backfill_request(job_id, request_id, time.time())
    await write_record(settings, settings.backfills_topic, job_id, orjson.dumps(doc))
    return request_id


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


async def delete(settings: Settings, job_id: str, force: bool = False) -> list[str]:
    """Delete a job: refuse (CommandFailed) while its queue holds undelivered events unless
    `force`; tombstone it on the jobs topic (every worker stops and forgets its delivery),
    wait until no live worker reports it, then delete its delivery group and queue topic."""
    job = await get_job(settings, job_id)
    group = delivery_group(settings, job_id)
    backlog = await consumer_lag(settings, job.config.queue_topic, group)
    if backlog and not force:
        raise CommandFailed(
            f"job {job_id} has {backlog} undelivered event(s) in its queue; nothing deleted. "
            "Use --force to delete it anyway (those events are lost)"
        )
    await write_record(settings, settings.jobs_topic, job_id, None)
    out = [f"job {job_id} deleted from the job configs"]
    if backlog and force:
        out.append(f"{backlog} undelivered event(s) dropped (--force)")
    stale = stale_after(settings.status_heartbeat_s)
    deadline = time.monotonic() + DELETE_WAIT_S
    while True:
        still = sorted(
            str(r.get("worker_id", "?"))
            for r in live_records(await load_statuses(settings, job_id), time.time(), stale)
        )
        if not still:
            break
        if time.monotonic() >= deadline:
            raise CommandFailed(
                f"job {job_id} is deleted, but after {DELETE_WAIT_S:.0f} s worker(s) "
                f"{', '.join(still)} still report it; its queue topic "
                f"{job.config.queue_topic} and consumer group {group} were kept"
            )
        await asyncio.sleep(0.5)
    if await delete_consumer_group(settings, group):
        out.append(f"consumer group {group} deleted")
    if await delete_topic(settings, job.config.queue_topic):
        out.append(f"queue topic {job.config.queue_topic} deleted")
    return out


async def wait_applied(settings: Settings, job_ids: Sequence[str], timeout_s: float) -> list[str]:
    """Return once every live worker reports running the stored version of each job;
    CommandFailed naming the workers that do not after `timeout_s`."""
    jobs = await load_jobs(settings)
    versions = {j: config_version(jobs[j].config.to_json_dict()) for j in job_ids if j in jobs}
    stale = stale_after(settings.status_heartbeat_s)
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = await load_all_statuses(settings)
        now = time.time()
        workers = live_workers((r for rs in statuses.values() for r in rs), now, stale)
        behind = {
            job_id: workers_behind(version, statuses.get(job_id, []), workers, now, stale)
            for job_id, version in versions.items()
        }
        behind = {j: ws for j, ws in behind.items() if ws}
        if workers and not behind:
            return [
                f"job {j}: version {v} runs on {len(workers)} live worker(s)"
                for j, v in versions.items()
            ]
        if time.monotonic() >= deadline:
            if not workers:
                raise CommandFailed(f"no live worker after {timeout_s:g} s: nothing runs the job")
            raise CommandFailed(
                f"not every live worker runs the applied version after {timeout_s:g} s: "
                + "; ".join(f"job {j}: {', '.join(ws)}" for j, ws in sorted(behind.items()))
            )
        await asyncio.sleep(0.5)
