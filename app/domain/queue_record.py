"""The job queue record (`topics/webhook-queue-JOB_ID.json`): one home for how it is written
(`queue_value`, by the router and the backfill) and read (`QueuedEvent`, by delivery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.domain.records import UserRecord
from app.domain.trace_context import TraceContext


def queue_value(
    record: UserRecord,
    job_id: str,
    ev_id: str,
    events: tuple[dict[str, Any], ...],
    reason: str | None = None,
    trace: TraceContext | None = None,
) -> bytes:
    """A job's queue record (`topics/webhook-queue-JOB_ID.json`); `reason` "deleted" marks
    the exits of an erased user (`app/domain/erasure.py`); `trace` is the trace context its
    webhook request continues (only when traces are on, `app/transport/tracing.py`)."""
    doc: dict[str, Any] = {
        "event_id": ev_id,
        "job_id": job_id,
        "time": record.timestamp,
        "user": {
            "id": record.id,
            "data": record.data,
            "by_fields": record.by_fields,
            "segment_events": events,
        },
    }
    if reason is not None:
        doc["reason"] = reason
    if trace is not None:
        doc.update(trace.to_dict())
    return orjson.dumps(doc)


def select_fields(data: dict[str, Any], export_fields: tuple[str, ...] | None) -> dict[str, Any]:
    """The export fields present on the profile, or every field when none are chosen."""
    if export_fields is None:
        return dict(data)
    return {f: data[f] for f in export_fields if f in data}


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One record of a job's queue: what the router decided this user owes the job."""

    event_id: str
    user_id: str
    data: dict[str, Any]
    by_fields: dict[str, Any]
    segment_events: list[dict[str, Any]]
    time: str | None
    queued_at_ms: int
    reason: str | None = None  # "deleted": an exit because the user was erased
    trace: TraceContext | None = None  # the trace its webhook request continues

    @classmethod
    def from_queue_record(cls, value: bytes, timestamp_ms: int) -> QueuedEvent:
        doc = orjson.loads(value)
        user = doc["user"]
        reason = doc.get("reason")
        return cls(
            event_id=str(doc["event_id"]),
            user_id=str(user["id"]),
            data=user.get("data") or {},
            by_fields=user.get("by_fields") or {},
            segment_events=list(user.get("segment_events") or []),
            time=doc.get("time"),
            queued_at_ms=timestamp_ms,
            reason=reason if isinstance(reason, str) else None,
            trace=TraceContext.parse(doc.get("traceparent"), doc.get("tracestate"))
            if "traceparent" in doc
            else None,
        )

    def template_user(self, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
        """What templates see as `user`: with a job's export `fields` chosen, only those
        fields (of `data` and of `by_fields`), plus the id and the segment events; with
        none chosen, every field."""
        return {
            "id": self.user_id,
            "data": select_fields(self.data, fields),
            "by_fields": select_fields(self.by_fields, fields),
            "segment_events": self.segment_events,
        }
