"""The input record of `audience-events` (contract section 4): parsed with orjson, checked by hand.

Hand-written checks because this runs once per input event on the hot path; each failure
names the field and the rule so the dead letter explains itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.domain.errors import InvalidRecord

SEGMENT_EVENT_KINDS = frozenset({"enter", "exit"})


@dataclass(frozen=True, slots=True)
class SegmentEvent:
    """One audience enter/exit for the user, as the upstream sent it."""

    slug: str
    event: str
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A valid input record: the user's full current profile plus its audience events."""

    id: str
    data: dict[str, Any]
    segment_events: tuple[SegmentEvent, ...]
    by_fields: dict[str, Any]
    timestamp: str | None


def _segment_events(value: Any) -> tuple[SegmentEvent, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRecord(f"segment_events: must be an array, got {type(value).__name__}")
    events = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRecord(f"segment_events[{i}]: must be an object")
        slug = item.get("slug")
        if not isinstance(slug, str) or not slug:
            raise InvalidRecord(f"segment_events[{i}].slug: required non-empty string")
        kind = item.get("event")
        if kind not in SEGMENT_EVENT_KINDS:
            raise InvalidRecord(
                f"segment_events[{i}].event: must be 'enter' or 'exit', got {kind!r}"
            )
        events.append(SegmentEvent(slug=slug, event=kind, raw=item))
    return tuple(events)


def parse_record(raw: bytes | None) -> UserRecord:
    """Parse and validate one input record; raise InvalidRecord naming what is wrong."""
    if raw is None:
        raise InvalidRecord("value: empty (tombstone) record")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"value: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidRecord(f"value: must be a JSON object, got {type(doc).__name__}")
    user_id = doc.get("id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id:
        raise InvalidRecord("id: required non-empty string")
    if "\x00" in user_id:
        raise InvalidRecord("id: must not contain NUL characters")
    data = doc.get("data")
    if not isinstance(data, dict):
        raise InvalidRecord("data: required object")
    by_fields = doc.get("by_fields")
    if by_fields is None:
        by_fields = {}
    elif not isinstance(by_fields, dict):
        raise InvalidRecord("by_fields: must be an object")
    timestamp = doc.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        raise InvalidRecord("timestamp: must be a string (RFC 3339)")
    return UserRecord(
        id=user_id,
        data=data,
        segment_events=_segment_events(doc.get("segment_events")),
        by_fields=by_fields,
        timestamp=timestamp,
    )
