"""Webhook bodies (contract section 7): the Lytics default shape and CloudEvents, one user or
a batch. Pure; the delivery lanes call `build_request_body` once per request.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from app.domain.jobs import JobConfig
from app.domain.queue_record import QueuedEvent, select_fields
from app.domain.timefmt import rfc3339_from_ms

JSON = "application/json"
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"


def event_data(job: JobConfig, event: QueuedEvent) -> dict[str, Any]:
    fields = select_fields(event.data, job.export_fields)
    fields["segment_events"] = event.segment_events
    return fields


def lytics_body(job: JobConfig, event: QueuedEvent) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "object": "user",
        "subscription_id": job.id,
        # The queue time, not the send time: a retry sends the very same body.
        "timestamp": rfc3339_from_ms(event.queued_at_ms),
    }
    if event.reason is not None:
        meta["reason"] = event.reason  # "deleted": the user was erased (README)
    return {"id": event.user_id, "data": event_data(job, event), "meta": meta}


def cloudevent_body(job: JobConfig, event: QueuedEvent) -> dict[str, Any]:
    body = {
        "specversion": "1.0",
        "id": event.event_id,
        "source": job.cloudevents_source or f"/work/{job.id}",
        "type": job.cloudevents_type,
        "subject": event.user_id,
        "datacontenttype": JSON,
        "time": event.time or rfc3339_from_ms(event.queued_at_ms),
        "data": event_data(job, event),
    }
    if event.reason is not None:
        body["reason"] = event.reason  # an extension attribute: "deleted" for an erased user
    return body


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
