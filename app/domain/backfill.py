"""Backfill ("existing users"): from a snapshot of the router's per-user state to the `enter`
events a job owes its current members. Pure; the backfill agent does the reading/writing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from app.domain.compaction import latest_values
from app.domain.jobs import JobConfig
from app.domain.routing import UserState


@dataclass(frozen=True, slots=True)
class Member:
    """A current member of one of the job's audiences, and where its profile is."""

    user_id: str
    slug: str
    segment_id: str
    last: tuple[int, int] | None


@dataclass(slots=True)
class BackfillProgress:
    """Durable progress of one backfill request (key: job id)."""

    request_id: str
    state: str = "running"  # running | done
    partitions_done: list[int] = field(default_factory=list)
    total_partitions: int = 0
    members_sent: int = 0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "state": self.state,
            "partitions_done": self.partitions_done,
            "total_partitions": self.total_partitions,
            "members_sent": self.members_sent,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BackfillProgress:
        return cls(
            request_id=str(doc["request_id"]),
            state=str(doc.get("state", "running")),
            partitions_done=[int(p) for p in doc.get("partitions_done", [])],
            total_partitions=int(doc.get("total_partitions", 0)),
            members_sent=int(doc.get("members_sent", 0)),
            updated_at=float(doc.get("updated_at", 0.0)),
        )


def latest_states(records: list[tuple[bytes | None, bytes | None]]) -> dict[bytes, bytes]:
    """The compacted view of a changelog partition (see `domain/compaction.py`)."""
    return latest_values(records)


def current_members(states: dict[bytes, bytes], job: JobConfig) -> list[Member]:
    """Users in any of the job's audiences right now, each once (first audience in job order)."""
    out = []
    for key, raw in states.items():
        if key.startswith(b"\x00"):  # not a user: e.g. a baseline marker (domain/baselines)
            continue
        state = UserState.from_bytes(raw)
        if state is None:
            continue
        for slug in job.audiences:
            if slug in state.audiences:
                out.append(Member(key.decode(), slug, state.audiences[slug], state.last))
                break
    return out


def backfill_request(job_id: str, request_id: str, now: float) -> dict[str, Any]:
    """A record of the backfills topic (`topics/webhook-backfills.json`)."""
    return {"id": request_id, "job_id": job_id, "requested_at": now}


def progress_record(job_id: str, progress: BackfillProgress) -> dict[str, Any]:
    """A record of the backfill-progress topic (`topics/webhook-backfill-progress.json`)."""
    return {"job_id": job_id, **progress.to_dict()}


def backfill_event_id(request_id: str, job_id: str, user_id: str) -> str:
    """Stable across a resumed backfill, so members sent twice are recognisable duplicates."""
    raw = f"backfill/{request_id}/{job_id}/{user_id}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()
