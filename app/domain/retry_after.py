"""Parsing the Retry-After header: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

MAX_DIGITS = 12
VERY_LONG_S = 1e12  # about 31 700 years


def retry_after_until(value: str | None, now: float) -> float | None:
    """The unix time to wait until, or None when the header is absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # Any delay longer than MAX_DIGITS digits is "very long": callers cap it anyway, and
        # int() of thousands of digits raises or costs time, float overflow too.
        if len(text.lstrip("0")) > MAX_DIGITS:
            return now + VERY_LONG_S
        return now + int(text)
    if len(text) > 64:
        return None  # no HTTP-date is that long
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(now, when.timestamp())
