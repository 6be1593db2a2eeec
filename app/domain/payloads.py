"""Webhook bodies (contract section 7): the Lytics default shape and CloudEvents, one user or
a batch. Pure; the delivery lanes call `build_request_body` once per request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.domain.jobs import JobConfig

JSON = "application/json"
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"


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

    @classmethod
    def from_queue_record(cls, value: bytes, timestamp_ms: int) -> QueuedEvent:
        doc = orjson.loads(value)
        user = doc["user"]
        return cls(
            event_id=str(doc["event_id"]),
            user_id=str(user["id"]),
            data=user.get("data") or {},
            by_fields=user.get("by_fields") or {},
            segment_events=list(user.get("segment_events") or []),
            time=doc.get("time"),
            queued_at_ms=timestamp_ms,
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


def rfc3339_from_ms(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def select_fields(data: dict[str, Any], export_fields: tuple[str, ...] | None) -> dict[str, Any]:
    """The export fields present on the profile, or every field when none are chosen."""
    if export_fields is None:
        return dict(data)
    return {f: data[f] for f in export_fields if f in data}


def event_data(job: JobConfig, event: QueuedEvent) -> dict[str, Any]:
    fields = select_fields(event.data, job.export_fields)
    fields["segment_events"] = event.segment_events
    return fields


def lytics_body(job: JobConfig, event: QueuedEvent) -> dict[str, Any]:
    return {
        "id": event.user_id,
        "data": event_data(job, event),
        "meta": {
            "object": "user",
            "subscription_id": job.id,
            # The queue time, not the send time: a retry sends the very same body.
            "timestamp": rfc3339_from_ms(event.queued_at_ms),
        },
    }


def cloudevent_body(job: JobConfig, event: QueuedEvent) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event.event_id,
        "source": job.cloudevents_source or f"/work/{job.id}",
        "type": job.cloudevents_type,
        "subject": event.user_id,
        "datacontenttype": JSON,
        "time": event.time or rfc3339_from_ms(event.queued_at_ms),
        "data": event_data(job, event),
    }


def webhook_id(events: list[QueuedEvent]) -> str:
    """Stable for the same events: a retry or a redelivery of one event keeps its id."""
    if len(events) == 1:
        return f"msg_{events[0].event_id}"
    digest = hashlib.blake2b(digest_size=16)
    for ev in events:
        digest.update(ev.event_id.encode())
    return f"msg_{digest.hexdigest()}"


def build_request_body(job: JobConfig, events: list[QueuedEvent]) -> tuple[bytes, str]:
    """(body, content type) for one request carrying `events` (a batch when job.batch)."""
    make = cloudevent_body if job.cloudevents else lytics_body
    if job.batch:
        body = orjson.dumps([make(job, ev) for ev in events])
        return body, CLOUDEVENT_BATCH if job.cloudevents else JSON
    if len(events) != 1:
        raise ValueError("an unbatched request carries exactly one event")
    return orjson.dumps(make(job, events[0])), CLOUDEVENT if job.cloudevents else JSON
