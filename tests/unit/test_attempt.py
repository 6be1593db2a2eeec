"""The attempt decision (issue 11): every rule of `app/domain/attempt.py`."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.attempt import Action, AttemptResult, Decision, decide
from app.domain.retry import RetryPolicy

NOW = 1_800_000_000.0
NEVER = frozenset({400, 404, 413, 422})
BACKOFF = RetryPolicy(1.0, 60.0, jitter=0.0)


def run(
    result: AttemptResult,
    failures: int = 0,
    used_token: bool = False,
    token_refreshed: bool = False,
) -> Decision:
    return decide(
        result,
        failures=failures,
        used_token=used_token,
        token_refreshed=token_refreshed,
        never_retry=NEVER,
        backoff=BACKOFF,
        now=NOW,
    )


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert run(AttemptResult(status=status)).action is Action.DELIVERED


@pytest.mark.parametrize("status", sorted(NEVER))
def test_do_not_retry_statuses_are_omitted_with_the_excerpt(status: int) -> None:
    got = run(AttemptResult(status=status, excerpt="bad field"))
    assert got.action is Action.OMIT
    assert got.status == status
    assert got.reason == f"omitted: HTTP {status} is not retried: bad field"


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408, 301, 100])
def test_other_statuses_are_retried_with_growing_backoff(status: int) -> None:
    first = run(AttemptResult(status=status, excerpt="x"))
    third = run(AttemptResult(status=status, excerpt="x"), failures=2)
    assert (first.action, first.retry, first.delay_s) == (Action.RETRY, 1, 1.0)
    assert (third.action, third.retry, third.delay_s) == (Action.RETRY, 3, 4.0)
    assert first.reason == f"HTTP {status}: x"


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER"])
def test_retry_after_sleeps_until_then(name: str) -> None:
    got = run(AttemptResult(status=503, headers={name: "120"}))
    assert (got.action, got.until) == (Action.SLEEP_UNTIL, NOW + 120)


def test_retry_after_as_http_date() -> None:
    got = run(AttemptResult(status=429, headers={"Retry-After": "Sat, 16 Jan 2027 08:00:00 GMT"}))
    assert (got.action, got.until) == (Action.SLEEP_UNTIL, NOW + 86400)


def test_an_unreadable_retry_after_is_an_ordinary_retry() -> None:
    got = run(AttemptResult(status=503, headers={"Retry-After": "soon"}))
    assert got.action is Action.RETRY


def test_retry_after_on_a_do_not_retry_status_still_omits() -> None:
    got = run(AttemptResult(status=400, headers={"Retry-After": "5"}))
    assert got.action is Action.OMIT


def test_401_with_a_token_refreshes_once_per_request() -> None:
    first = run(AttemptResult(status=401), used_token=True)
    again = run(AttemptResult(status=401), used_token=True, token_refreshed=True)
    static = run(AttemptResult(status=401))
    assert first.action is Action.REFRESH_TOKEN
    assert again.action is Action.RETRY
    assert static.action is Action.RETRY


def test_refused_destination_is_omitted_never_an_error() -> None:
    got = run(AttemptResult(refused="127.0.0.1 is loopback"))
    assert got.action is Action.OMIT
    assert got.reason == "destination refused: 127.0.0.1 is loopback"


def test_token_errors_permanent_is_error_now_transient_is_retry() -> None:
    bad = run(AttemptResult(token_error="invalid_client", token_error_permanent=True, status=401))
    down = run(AttemptResult(token_error="token endpoint: 503", status=503))
    assert (bad.action, bad.status, bad.reason) == (Action.ERROR_NOW, 401, "invalid_client")
    assert (down.action, down.retry) == (Action.RETRY, 1)


def test_transport_errors_are_retried() -> None:
    got = run(AttemptResult(transport_error="ConnectionResetError: reset"), failures=1)
    assert (got.action, got.retry, got.delay_s, got.status) == (Action.RETRY, 2, 2.0, None)
    assert got.reason == "ConnectionResetError: reset"


@given(
    status=st.one_of(st.none(), st.integers(0, 999)),
    retry_after=st.one_of(st.none(), st.text(max_size=40)),
    failures=st.integers(0, 10_000),
    used_token=st.booleans(),
    refreshed=st.booleans(),
    transport=st.one_of(st.none(), st.text(max_size=10)),
)
def test_decide_never_raises_and_respects_the_rules(
    status: int | None,
    retry_after: str | None,
    failures: int,
    used_token: bool,
    refreshed: bool,
    transport: str | None,
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    got = decide(
        AttemptResult(status=status, headers=headers, transport_error=transport),
        failures=failures,
        used_token=used_token,
        token_refreshed=refreshed,
        never_retry=NEVER,
        backoff=RetryPolicy(0.5, 30.0),
        now=NOW,
        rng=random.Random(1),
    )
    if transport is not None or status is None:
        assert got.action is Action.RETRY
    elif 200 <= status < 300:
        assert got.action is Action.DELIVERED
    elif status in NEVER:
        assert got.action is Action.OMIT
    if got.action is Action.RETRY:
        assert 0 < got.delay_s <= 30.0 and got.retry == failures + 1
    if got.action is Action.SLEEP_UNTIL:
        assert got.until is not None and got.until >= NOW


@pytest.mark.parametrize("status", [401, 400, 503])
def test_decisions_name_the_receivers_part_of_the_reason(status: int) -> None:
    got = run(AttemptResult(status=status, excerpt="alice@example.com"), used_token=True)
    assert got.outside == "alice@example.com" and got.outside in got.reason
