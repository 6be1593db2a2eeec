"""A job's status summarized from its workers' status records."""

from __future__ import annotations

from typing import Any

from app.domain.status_summary import NO_LIVE_WORKER, summarize_status

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def rec(worker: str, state: str, **status: Any) -> dict[str, Any]:
    return {"worker_id": worker, "status": {"state": state, "since": T0, **status}}


def test_state_is_the_real_one_and_wanted_the_desired_one() -> None:
    # Stopped but a worker has not stopped yet: the real state is shown, with the wish.
    out = summarize_status("stopped", [rec("w1", "running")])
    assert out["state"] == "running" and out["wanted"] == "stopped"
    out = summarize_status("stopped", [rec("w1", "stopped")])
    assert out["state"] == "stopped" and out["wanted"] == "stopped"


def test_no_records_is_no_live_worker() -> None:
    out = summarize_status("running", [])
    assert out["state"] == NO_LIVE_WORKER
    assert out["workers"] == {}


def test_worst_state_wins() -> None:
    order = ["running", "sleeping", "error", "failed"]
    for i, worst in enumerate(order):
        records = [rec(f"w{j}", s) for j, s in enumerate(order[: i + 1])]
        assert summarize_status("running", records[::-1])["state"] == worst


def test_counters_are_summed() -> None:
    a = {"delivered_requests": 2, "delivered_events": 3, "failed_requests": 1}
    b = {"delivered_requests": 5, "omitted_events": 4, "retried_requests": 1}  # old records
    out = summarize_status(
        "running", [rec("w1", "running", counters=a), rec("w2", "running", counters=b)]
    )
    assert out["counters"] == {
        "delivered_requests": 7,
        "delivered_events": 3,
        "omitted_events": 4,
        "failed_requests": 1,
    }


def test_last_error_is_most_recent() -> None:
    old = {"at": T0, "reason": "old", "status": 500}
    new = {"at": T0 + 60, "reason": "new", "status": 503}
    records = [rec("w1", "running", last_error=new), rec("w2", "running", last_error=old)]
    out = summarize_status("running", records)
    assert out["last_error"] == {"at": "2023-11-14T22:14:20Z", "status": 503, "reason": "new"}


def test_next_run_is_earliest_in_reported_state() -> None:
    records = [
        rec("w1", "error", next_run=T0 + 120),
        rec("w2", "error", next_run=T0 + 60),
        rec("w3", "sleeping", next_run=T0 + 10),
    ]
    out = summarize_status("running", records)
    assert out["state"] == "error"
    assert out["next_run"] == "2023-11-14T22:14:20Z"


def test_workers_map_id_to_state() -> None:
    out = summarize_status("running", [rec("w1", "running"), rec("w2", "sleeping")])
    assert out["workers"] == {"w1": "running", "w2": "sleeping"}


def test_times_are_iso_z() -> None:
    records = [rec("w1", "sleeping", next_run=T0 + 5, last_error={"at": T0, "reason": "x"})]
    out = summarize_status("running", records)
    assert out["since"] == "2023-11-14T22:13:20Z"
    assert out["next_run"] == "2023-11-14T22:13:25Z"
    assert out["last_error"]["at"] == "2023-11-14T22:13:20Z"
