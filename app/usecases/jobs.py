"""Job use cases that write: validate and store on `webhook-jobs`, stop, resume,
backfill, delete, rotate a signing secret (reading jobs back is `job_reads`). They return
models; the CLI and the API format them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.domain.backfill import backfill_request
from app.domain.destinations import Network
from app.domain.errors import ConfigError, FieldProblem
from app.domain.job_signing import keys_at_apply, open_keys, seal_keys
from app.domain.jobs import JobConfig, parse_job_config
from app.domain.secrets import SecretKeyError
from app.domain.signing import DEFAULT_OVERLAP_S, generate_secret, rotate
from app.domain.status_summary import (
    config_version,
    live_records,
    live_workers,
    stale_after,
    workers_behind,
)
from app.domain.stored_job import SealedSigningKey, StoredJob
from app.domain.timefmt import rfc3339, utc_now_rfc3339
from app.settings import Settings
from app.topic_catalog import (
    delivery_group,
    enrichment_topic_spec,
    queue_topic_spec,
)
from app.transport.kafka import write_record
from app.transport.kafka_admin import (
    consumer_lag,
    delete_consumer_group,
    delete_topic,
    ensure_topics,
)
from app.usecases.errors import CommandFailed as CommandFailed
from app.usecases.job_reads import (
    ensure_declared_topics,
    get_job,
    load_all_statuses,
    load_compacted,
    load_jobs,
    load_statuses,
)
from app.usecases.keys import KeyProblem, secret_box

DELETE_WAIT_S = 60.0
"""How long `jobs delete` waits for the live workers to drop the job."""


def validate_documents(
    docs: list[object], allowed: Sequence[Network] | None = None
) -> list[JobConfig]:
    """Every document valid or a ConfigError naming every wrong field of every document.

    With `allowed` (the settings' allowed networks), destinations are judged too (see
    `parse_job_config`)."""
    problems: list[FieldProblem] = []
    unlisted = 0
    configs: list[JobConfig] = []
    for i, doc in enumerate(docs):
        try:
            configs.append(parse_job_config(doc, allowed=allowed))
        except ConfigError as exc:
            prefix = f"[{i}]." if len(docs) > 1 else ""
            problems.extend(FieldProblem(prefix + p.field, p.rule) for p in exc.problems)
            unlisted += exc.unlisted
    if problems:
        raise ConfigError("job config", problems, unlisted)
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
    """Return once each job's worker (the holder of its delivery slot) reports running its
    stored version; CommandFailed naming the workers that do not after `timeout_s`."""
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
                f"job {j}: version {v} runs on worker "
                + ", ".join(
                    sorted(
                        str(r.get("worker_id"))
                        for r in live_records(statuses.get(j, []), now, stale)
                        if r.get("version") == v
                    )
                )
                for j, v in versions.items()
            ]
        if time.monotonic() >= deadline:
            if not workers:
                raise CommandFailed(f"no live worker after {timeout_s:g} s: nothing runs the job")
            raise CommandFailed(
                f"the applied version does not run yet after {timeout_s:g} s: "
                + "; ".join(f"job {j}: {', '.join(ws)}" for j, ws in sorted(behind.items()))
            )
        await asyncio.sleep(0.5)
