"""Dead letters read back and turned into queue records again (`webhooks deadletters`).

A dead letter's id is `<partition>-<offset>` on the dead-letter topic. Only dead letters of a
job whose event is a whole queued event (written by delivery: user id, data, by_fields,
segment events, event id) can be replayed; those of invalid input records have no job and
hold the raw record. A replayed event keeps its event id, so its `webhook-id` is the one
its first attempts carried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.domain.timefmt import rfc3339


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    job_id: str | None
    time: str | None
    written_at: str | None
    reason: str
    status: int | None
    event: Any
    refusal: str | None = None  # why it may never be replayed (its user was erased)

    @property
    def replayable(self) -> bool:
        return self.refusal is None and queue_record_of(self) is not None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "time": self.time,
            "written_at": self.written_at,
            "reason": self.reason,
            "status": self.status,
            "replayable": self.replayable,
            **({"refusal": self.refusal} if self.refusal else {}),
            "event": self.event,
        }


def parse_dead_letter(
    partition: int, offset: int, timestamp_ms: int, raw: bytes | None
) -> DeadLetter:
    """A dead letter read back; one that is not valid JSON is shown as its text (never
    raises: the topic may hold anything a hostile input made us write)."""
    ident = f"{partition}-{offset}"
    written = rfc3339(timestamp_ms / 1000)
    try:
        doc = orjson.loads(raw or b"null")
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = (raw or b"").decode("utf-8", errors="replace")
        return DeadLetter(ident, None, None, written, "unreadable dead letter", None, text)
    status = doc.get("status")
    return DeadLetter(
        id=ident,
        job_id=doc.get("job_id") if isinstance(doc.get("job_id"), str) else None,
        time=doc.get("time") if isinstance(doc.get("time"), str) else None,
        written_at=written,
        reason=str(doc.get("reason", "")),
        status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        event=doc.get("event"),
    )


def parse_id(text: str) -> tuple[int, int]:
    """`<partition>-<offset>` -> (partition, offset); ValueError naming the id."""
    part, sep, off = text.partition("-")
    if not sep or not part.isdigit() or not off.isdigit():
        raise ValueError(f"{text!r} is not a dead-letter id (<partition>-<offset>)")
    return int(part), int(off)


def queue_record_of(letter: DeadLetter) -> tuple[bytes, bytes] | None:
    """(key, value) of the queue record that puts the event back in its job's queue, or
    None when the dead letter does not hold a whole queued event."""
    ev = letter.event
    if letter.job_id is None or not isinstance(ev, dict):
        return None
    user_id, event_id = ev.get("id"), ev.get("event_id")
    segment_events = ev.get("segment_events")
    if not isinstance(user_id, str) or not isinstance(event_id, str):
        return None
    if not isinstance(segment_events, list):
        return None
    data, by_fields = ev.get("data") or {}, ev.get("by_fields") or {}
    if not isinstance(data, dict) or not isinstance(by_fields, dict):
        return None
    doc: dict[str, Any] = {
        "event_id": event_id,
        "job_id": letter.job_id,
        "time": ev.get("time") if isinstance(ev.get("time"), str) else None,
        "user": {
            "id": user_id,
            "data": data,
            "by_fields": by_fields,
            "segment_events": segment_events,
        },
    }
    if isinstance(ev.get("reason"), str):
        doc["reason"] = ev["reason"]  # an erasure's exit stays marked deleted
    return user_id.encode(), orjson.dumps(doc)
