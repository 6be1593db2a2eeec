"""RFC 3339 times in UTC with a `Z`: the one home for how the service writes a time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

Precision = Literal["seconds", "milliseconds", "microseconds"]


def rfc3339(ts: float | None, timespec: Precision = "milliseconds") -> str | None:
    """Unix seconds as RFC 3339 (`2026-11-29T20:00:00.000Z`); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def rfc3339_from_ms(ms: int) -> str:
    """Unix milliseconds (a Kafka record timestamp) as RFC 3339."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def utc_now_rfc3339() -> str:
    """Now, to the microsecond."""
    out = rfc3339(time.time(), "microseconds")
    assert out is not None
    return out
