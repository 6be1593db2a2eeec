"""The job delivery state machine (product doc "Error Handling")."""

from __future__ import annotations

from app.domain.job_state import (
    Counters,
    JobRetrySchedule,
    JobStateMachine,
    JobStatus,
    LastError,
)

T0 = 1_000_000.0


def machine() -> JobStateMachine:
    return JobStateMachine(
        JobStatus(since=T0),
        JobRetrySchedule(initial_s=60, max_s=3600),
        failed_after_s=36000,
        retry_after_max_s=86400,
    )


def state(m: JobStateMachine) -> str:
    return m.status.state


def fail(m: JobStateMachine, now: float, times: int = 10) -> None:
    for _ in range(times):
        m.failed(now, "HTTP 500: boom", 500)


def test_nine_failures_keep_running() -> None:
    m = machine()
    fail(m, T0, 9)
    assert m.status.state == "running"
    assert m.status.consecutive_failures == 9
    assert m.wait_s(T0) == 0


def test_tenth_failure_is_error() -> None:
    m = machine()
    fail(m, T0)
    assert m.status.state == "error"
    assert m.status.next_run == T0 + 60
    assert m.wait_s(T0) == 60


def test_error_runs_again_when_due() -> None:
    m = machine()
    fail(m, T0)
    assert m.wait_s(T0 + 60) == 0
    assert m.status.state == "running"
    assert m.status.consecutive_failures == 0
    assert m.status.next_run is None


def test_error_delay_doubles() -> None:
    m = machine()
    fail(m, T0)
    m.wait_s(T0 + 60)
    fail(m, T0 + 60)
    assert m.status.state == "error"
    assert m.status.next_run == T0 + 60 + 120


def test_error_delay_is_capped() -> None:
    m = machine()
    now, delays = T0, []
    for _ in range(8):
        fail(m, now)
        assert m.status.next_run is not None
        delays.append(m.status.next_run - now)
        now = m.status.next_run
        m.wait_s(now)
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert JobRetrySchedule(initial_s=60, max_s=3600).delay(20) == 3600


def test_success_resets() -> None:
    m = machine()
    fail(m, T0)
    m.delivered(T0 + 1)
    st = m.status
    assert (st.state, st.consecutive_failures, st.error_attempt, st.error_since) == (
        "running",
        0,
        0,
        None,
    )
    assert st.next_run is None


def test_persisting_errors_fail() -> None:
    m = machine()
    fail(m, T0)
    assert m.wait_s(T0 + 36000) == 0
    fail(m, T0 + 36000)
    assert m.status.state == "failed"
    assert m.wait_s(T0 + 99999) is None


def test_errors_just_short_of_failed_after_stay_error() -> None:
    m = machine()
    fail(m, T0)
    m.wait_s(T0 + 35999)
    fail(m, T0 + 35999)
    assert m.status.state == "error"


def test_resume_from_failed() -> None:
    m = machine()
    fail(m, T0)
    m.wait_s(T0 + 36000)
    fail(m, T0 + 36000)
    m.resume(T0 + 40000)
    assert m.status.state == "running"
    assert m.status.error_since is None
    assert m.wait_s(T0 + 40000) == 0


def test_retry_after_sleeps_without_error() -> None:
    m = machine()
    fail(m, T0, 3)
    m.retry_after(T0, T0 + 300)
    assert m.status.state == "sleeping"
    assert m.status.next_run == T0 + 300
    assert m.status.counters.failed_requests == 3
    assert m.status.consecutive_failures == 3
    assert m.wait_s(T0 + 100) == 200
    assert m.wait_s(T0 + 300) == 0
    assert state(m) == "running"


def test_retry_after_is_capped() -> None:
    m = machine()
    m.retry_after(T0, T0 + 10**9)
    assert m.status.next_run == T0 + 86400


def test_retry_after_keeps_failed() -> None:
    m = machine()
    fail(m, T0)
    m.wait_s(T0 + 36000)
    fail(m, T0 + 36000)
    m.retry_after(T0 + 36001, T0 + 36100)
    assert m.status.state == "failed"
    assert m.wait_s(T0 + 36200) is None


def test_counters() -> None:
    m = machine()
    m.delivered(T0, requests=2, events=5)
    m.delivered(T0)
    m.omitted(3)
    fail(m, T0, 2)
    assert m.status.counters == Counters(
        delivered_requests=3,
        delivered_events=6,
        omitted_events=3,
        failed_requests=2,
    )


def test_last_error_truncated() -> None:
    m = machine()
    m.failed(T0, "x" * 500, 502)
    assert m.status.last_error == LastError(at=T0, reason="x" * 200, status=502)
    m.failed(T0 + 1, "timeout")
    assert m.status.last_error == LastError(at=T0 + 1, reason="timeout", status=None)


def test_status_round_trip() -> None:
    m = machine()
    fail(m, T0)
    m.delivered(T0 + 1, events=4)
    fail(m, T0 + 2, 1)
    doc = m.status.to_dict()
    assert doc["last_error"] == {"at": T0 + 2, "reason": "HTTP 500: boom", "status": 500}
    assert JobStatus.from_dict(doc) == m.status


def test_since_changes_only_with_state() -> None:
    m = machine()
    m.delivered(T0 + 5)
    fail(m, T0 + 6, 9)
    assert m.status.since == T0
    fail(m, T0 + 7, 1)
    assert m.status.since == T0 + 7
    fail(m, T0 + 8, 3)
    assert m.wait_s(T0 + 30) == 37
    assert m.status.since == T0 + 7
    m.retry_after(T0 + 70, T0 + 80)
    m.retry_after(T0 + 75, T0 + 90)
    assert (m.status.since, m.status.next_run) == (T0 + 70, T0 + 90)


def state_of(m: JobStateMachine) -> str:
    return m.status.state


def test_the_machine_reports_its_own_changes() -> None:
    m = machine()
    assert m.take_changed() is True  # a new machine reports its status once
    assert m.take_changed() is False
    m.delivered(T0)
    assert m.take_changed() is True
    assert m.wait_s(T0) == 0.0
    assert m.take_changed() is False  # running and due: nothing changed
    fail(m, T0, 10)
    assert m.take_changed() is True
    assert state_of(m) == "error"
    assert m.status.next_run is not None
    m.wait_s(m.status.next_run + 1)  # due again: back to running
    assert m.take_changed() is True
    assert state_of(m) == "running"


def test_counters_of_older_records_are_read() -> None:
    doc = {"delivered_requests": 2, "retried_requests": 7, "failed_requests": 7}
    assert Counters.from_dict(doc) == Counters(delivered_requests=2, failed_requests=7)


def test_a_job_moving_between_workers_keeps_its_newer_state_not_the_counters() -> None:
    from app.domain.job_state import Counters, LastError, carry_state

    previous = JobStatus(
        state="failed",
        since=200.0,
        error_since=100.0,
        last_error=LastError(150.0, "HTTP 500"),
        counters=Counters(delivered_events=7),
    )
    here = JobStatus(since=50.0, counters=Counters(delivered_events=3))
    carry_state(here, previous)
    assert (here.state, here.since, here.error_since) == ("failed", 200.0, 100.0)
    assert here.last_error == LastError(150.0, "HTTP 500")
    assert here.counters.delivered_events == 3, "counters stay this worker's own"
    older = JobStatus(state="error", since=10.0)
    carry_state(here, older)
    assert here.state == "failed", "an older state elsewhere changes nothing"
