"""Property tests of the attempt decision's pure parts: any status, any do-not-retry list,
any attempt number, any Retry-After gives a decision and a bounded wait, never an error."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from app.domain.retry import Outcome, RetryPolicy, classify
from app.domain.retry_after import retry_after_until

NOW = 1_700_000_000.0


@given(st.integers(min_value=-(2**31), max_value=2**31), st.frozensets(st.integers(100, 999)))
def test_any_status_is_classified(status: int, never_retry: frozenset[int]) -> None:
    outcome = classify(status, never_retry)
    if 200 <= status < 300:
        assert outcome is Outcome.DELIVERED
    elif status in never_retry:
        assert outcome is Outcome.OMIT
    else:
        assert outcome is Outcome.RETRY


@given(
    st.integers(min_value=-10, max_value=10**9),
    st.floats(min_value=0.001, max_value=60),
    st.floats(min_value=0.001, max_value=3600),
    st.integers(),
)
def test_any_attempt_number_gives_a_bounded_delay(
    attempt: int, initial: float, cap: float, seed: int
) -> None:
    delay = RetryPolicy(initial, cap).delay(attempt, random.Random(seed))
    assert 0 <= delay <= cap


@given(
    st.one_of(
        st.none(),
        st.text(max_size=200),
        st.integers(min_value=0).map(str),
        st.text(alphabet="0123456789", min_size=1, max_size=6000),
    )
)
def test_any_retry_after_is_a_time_not_before_now_or_none(value: str | None) -> None:
    until = retry_after_until(value, NOW)
    assert until is None or until >= NOW
