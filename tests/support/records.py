"""Input records for tests: one builder instead of one per test module."""

from __future__ import annotations

from typing import Any

import orjson

EVENT_TIME = "2023-05-25T23:09:59.872199615Z"


def input_record(
    user: str, data: dict[str, Any] | None = None, *events: tuple[str, str], **extra: Any
) -> tuple[bytes, bytes]:
    """(key, value) of an input record for `user`; `events` are (kind, slug) pairs."""
    segment_events = [
        {"id": f"seg-{slug}", "slug": slug, "event": kind, kind: EVENT_TIME}
        for kind, slug in events
    ]
    doc = {"id": user, "data": data or {}, "segment_events": segment_events, **extra}
    return user.encode(), orjson.dumps(doc)


def toggle(user: str, step: int, slug: str = "newsletter", **data: Any) -> tuple[bytes, bytes]:
    """The user's record number `step`: enters `slug` on even steps, exits on odd ones (so
    each record makes one webhook); `data` defaults to {"n": step}."""
    kind = "enter" if step % 2 == 0 else "exit"
    return input_record(user, {"n": step, **data}, (kind, slug))
