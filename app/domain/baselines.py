"""Baselines of trigger fields for a job's existing members (product doc: "if any of the
selected field values change, then the user will be sent"). Pure; the router reads and writes.

`route` compares a member's record with the fingerprint of the job's trigger fields stored in
the member's state. A member who was in the audience before the job existed (or before its
trigger fields changed) has no such fingerprint, so without a baseline their first change
would only set one. When the router first routes a partition for a job whose baselines are
not established there, it reads each such member's latest input record (the state points to
it: `UserState.last`), stores the fingerprint of that record's trigger fields, and writes a
marker (key `MARKER_PREFIX + job id`, value the field tag) into the partition's state so
this happens once per job, partition and set of trigger fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from app.domain.jobs import JobConfig
from app.domain.routing import UserState, field_tag, fingerprint

# State keys are user ids, which may not contain NUL (`parse_record`): no user can forge one.
MARKER_PREFIX = b"\x00baseline:"


def marker_key(job_id: str) -> bytes:
    return MARKER_PREFIX + job_id.encode()


def is_marker(key: bytes) -> bool:
    return key.startswith(MARKER_PREFIX)


def marker_value(job: JobConfig) -> bytes:
    return orjson.dumps({"job_id": job.id, "tag": field_tag(job.trigger_fields)})


def jobs_needing_baselines(
    jobs: Iterable[JobConfig], stored: Mapping[bytes, bytes]
) -> list[JobConfig]:
    """Triggers jobs with trigger fields whose baselines this partition has not established
    for their current fields."""
    out = []
    for job in jobs:
        if not (job.is_triggers and job.trigger_fields):
            continue
        raw = stored.get(marker_key(job.id))
        tag = field_tag(job.trigger_fields)
        try:
            done = raw is not None and orjson.loads(raw).get("tag") == tag
        except (ValueError, AttributeError):
            done = False
        if not done:
            out.append(job)
    return out


@dataclass(frozen=True, slots=True)
class Wanted:
    """A member whose baseline for some jobs is read from their latest record at `offset`."""

    key: bytes
    offset: int
    jobs: tuple[str, ...]


def members_without_baseline(
    stored: Mapping[bytes, bytes], partition: int, jobs: list[JobConfig]
) -> list[Wanted]:
    """Members of each job's audiences whose state has no fingerprint for the job's current
    trigger fields and points to a latest record on `partition`."""
    tags = {job.id: field_tag(job.trigger_fields) for job in jobs}
    out: list[Wanted] = []
    for key, raw in stored.items():
        if is_marker(key):
            continue
        try:
            state = UserState.from_bytes(raw)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        if state is None or not state.audiences or state.last is None:
            continue
        if state.last[0] != partition:
            continue
        needing = tuple(
            job.id
            for job in jobs
            if any(slug in state.audiences for slug in job.audiences)
            and state.fingerprints.get(job.id, "").partition(":")[0] != tags[job.id]
        )
        if needing:
            out.append(Wanted(key, state.last[1], needing))
    return out


def with_baselines(
    raw_state: bytes | None,
    offset: int,
    partition: int,
    data: dict[str, object],
    jobs: Mapping[str, JobConfig],
    job_ids: Iterable[str],
) -> bytes | None:
    """The member's state with a fingerprint of `data` (their record at `offset`) for each
    job still without one; None when nothing changes (the state moved on meanwhile: a newer
    record was routed, which set or needed no baseline itself)."""
    state = UserState.from_bytes(raw_state)
    if state is None or state.last != (partition, offset):
        return None
    changed = False
    for job_id in job_ids:
        job = jobs.get(job_id)
        if job is None:
            continue
        tag = field_tag(job.trigger_fields)
        if state.fingerprints.get(job_id, "").partition(":")[0] == tag:
            continue
        state.fingerprints[job_id] = fingerprint(data, job.trigger_fields)
        changed = True
    return state.to_bytes() if changed else None
