"""Parsing the Retry-After header: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime


def retry_after_until(value: str | None, now: float) -> float | None:
    """The unix time to wait until, or None when the header is absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return now + int(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(now, when.timestamp())
