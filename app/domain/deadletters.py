"""Dead-letter records (contract section 3): why an event was not delivered, with the event."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from app.domain.timefmt import utc_now_rfc3339


def raw_event(raw: bytes | None) -> Any:
    """The original bytes, kept whole: as text when UTF-8, else base64, so nothing is lost."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


def deadletter_value(
    *,
    job_id: str | None,
    reason: str,
    event: Any,
    status: int | None = None,
    source: tuple[str, int, int] | None = None,
) -> bytes:
    doc: dict[str, Any] = {
        "job_id": job_id,
        "reason": reason,
        "status": status,
        "time": utc_now_rfc3339(),
        "event": event,
    }
    if source is not None:
        doc["topic"], doc["partition"], doc["offset"] = source
    return orjson.dumps(doc)
