"""Retry-After parsing: delay-seconds or an HTTP-date, else None."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.retry_after import retry_after_until

NOW = 1_700_000_000.0
HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
HTTP_DATE_TS = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()


def test_delay_seconds() -> None:
    assert retry_after_until("120", NOW) == NOW + 120


def test_zero_seconds_is_now() -> None:
    assert retry_after_until("0", NOW) == NOW


def test_http_date_in_the_future() -> None:
    now = HTTP_DATE_TS - 300
    assert retry_after_until(HTTP_DATE, now) == HTTP_DATE_TS


def test_http_date_in_the_past_is_now() -> None:
    assert retry_after_until(HTTP_DATE, NOW) == NOW


@pytest.mark.parametrize("value", [None, "", "soon", "-5"])
def test_absent_or_unreadable_is_none(value: str | None) -> None:
    assert retry_after_until(value, NOW) is None


def test_non_ascii_digit_is_unreadable_not_a_crash() -> None:
    # "²".isdigit() is True but int("²") raises ValueError (a bug in app/).
    assert retry_after_until("\u00b2", NOW) is None


@pytest.mark.parametrize("digits", [13, 309, 401, 4300, 5000, 100_000])
def test_absurdly_long_delay_is_very_long_not_an_error(digits: int) -> None:
    until = retry_after_until("9" * digits, NOW)
    assert until is not None and until > NOW + 10**11


@settings(max_examples=300)
@given(st.text(max_size=6000))
def test_any_header_value_gives_a_time_or_none(value: str) -> None:
    until = retry_after_until(value, NOW)
    assert until is None or until >= NOW
