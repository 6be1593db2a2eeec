"""Trigger evaluation: from one input record and the user's stored state to the events each
job must deliver, and the user's next state. Pure: the router agent feeds it and writes out.

State per user is small on purpose: the audiences the user is in (slug -> segment id) and,
per job with trigger fields, a fingerprint of those fields; never the whole profile.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.domain.jobs import JobConfig
from app.domain.records import UserRecord

_TRIGGER_KINDS = {
    "enter_exit": frozenset({"enter", "exit"}),
    "enter": frozenset({"enter"}),
    "exit": frozenset({"exit"}),
}


@dataclass(slots=True)
class UserState:
    """What the router remembers of one user between records."""

    audiences: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    # Where the user's latest input record is ([partition, offset]): a backfill reads the
    # profile from there instead of the state keeping whole profiles.
    last: tuple[int, int] | None = None

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {"audiences": self.audiences, "fingerprints": self.fingerprints}
        if self.last is not None:
            doc["last"] = list(self.last)
        # orjson returns bytes that keep its 4 KiB output buffer allocated; the state is kept
        # in memory for every user, so store an exact-size copy (1 M users: 4 GiB -> ~0.3).
        return memoryview(orjson.dumps(doc)).tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> UserState | None:
        if not raw:
            return None
        doc = orjson.loads(raw)
        last = doc.get("last")
        return cls(
            audiences=dict(doc.get("audiences", {})),
            fingerprints=dict(doc.get("fingerprints", {})),
            last=(int(last[0]), int(last[1])) if last else None,
        )


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One thing a job must deliver for one user: its segment events (enter/exit/change)."""

    job_id: str
    segment_events: tuple[dict[str, Any], ...]


def fingerprint(data: dict[str, Any], fields: Iterable[str]) -> str:
    """`<field-list tag>:<digest of the values>` (missing and null are the same).

    The tag lets an edit of a job's trigger_fields read as "no baseline" rather than as a
    change of every member.
    """
    names = tuple(fields)
    values = orjson.dumps([data.get(f) for f in names], option=orjson.OPT_SORT_KEYS)
    return f"{field_tag(names)}:{hashlib.blake2b(values, digest_size=12).hexdigest()}"


def field_tag(fields: Iterable[str]) -> str:
    """The tag of a list of trigger fields (the part of a fingerprint before the colon)."""
    return _field_tag(tuple(fields))


@functools.lru_cache(maxsize=4096)
def _field_tag(fields: tuple[str, ...]) -> str:
    # Computed for every record of every job with trigger fields, and for every batch by
    # the baseline check: jobs' field lists are few, so each is hashed once.
    return hashlib.blake2b(orjson.dumps(list(fields)), digest_size=4).hexdigest()


def _same_fields(old: str, new: str) -> bool:
    return old.partition(":")[0] == new.partition(":")[0]


def apply_segment_events(audiences: dict[str, str], record: UserRecord) -> dict[str, str]:
    """Membership after the record's enter/exit events, applied in order."""
    out = dict(audiences)
    for ev in record.segment_events:
        if ev.event == "enter":
            out[ev.slug] = str(ev.raw.get("id", ""))
        else:
            out.pop(ev.slug, None)
    return out


def route(
    record: UserRecord, state: UserState | None, jobs: Iterable[JobConfig]
) -> tuple[list[JobEvent], UserState]:
    """The events each job owes for `record`, and the user's state after it.

    A user seen for the first time sets the baseline of every fingerprint and sends no change.
    """
    first_seen = state is None
    before = state or UserState()
    members = apply_segment_events(before.audiences, record)
    fingerprints: dict[str, str] = {}
    out: list[JobEvent] = []
    for job in jobs:
        audiences = set(job.audiences)
        kinds = (
            _TRIGGER_KINDS[job.trigger_events] if job.is_triggers else _TRIGGER_KINDS["enter_exit"]
        )
        events = [
            ev.raw for ev in record.segment_events if ev.slug in audiences and ev.event in kinds
        ]
        in_job = [slug for slug in job.audiences if slug in members]
        if job.is_triggers and job.trigger_fields and in_job:
            fp = fingerprint(record.data, job.trigger_fields)
            fingerprints[job.id] = fp
            old = before.fingerprints.get(job.id)
            changed = not first_seen and old is not None and _same_fields(old, fp) and old != fp
            if changed and not events:
                slug = in_job[0]
                events.append({"id": members[slug], "event": "change", "slug": slug})
        if events:
            out.append(JobEvent(job_id=job.id, segment_events=tuple(events)))
    return out, UserState(audiences=members, fingerprints=fingerprints)
