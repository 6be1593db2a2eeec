"""Status liveness: stale and final records drop out; versions tell who runs what."""

from __future__ import annotations

from typing import Any

from app.domain.status_summary import (
    HEARTBEAT_S,
    NO_LIVE_WORKER,
    STALE_AFTER_S,
    config_version,
    is_live,
    live_workers,
    stale_after,
    summarize_status,
    workers_behind,
)

NOW = 1_700_000_000.0


def rec(worker: str, state: str, age: float, **extra: Any) -> dict[str, Any]:
    status = {"state": state, "since": NOW - 100, **extra.pop("status", {})}
    return {"worker_id": worker, "updated_at": NOW - age, "status": status, **extra}


def test_stale_interval_is_three_heartbeats() -> None:
    assert HEARTBEAT_S == 5.0
    assert STALE_AFTER_S == 15.0 == stale_after(HEARTBEAT_S)
    assert stale_after(1.0) == 3.0


def test_record_is_live_until_the_stale_interval() -> None:
    assert is_live(rec("w", "running", 0), NOW)
    assert is_live(rec("w", "running", STALE_AFTER_S), NOW)
    assert not is_live(rec("w", "running", STALE_AFTER_S + 0.1), NOW)
    assert not is_live(rec("w", "running", 10), NOW, stale_after_s=3.0)


def test_final_or_undated_record_is_not_live() -> None:
    assert not is_live(rec("w", "running", 0, final=True), NOW)
    undated = {"worker_id": "w", "status": {"state": "running"}}
    assert not is_live(undated, NOW)


def test_all_workers_gone_is_no_live_worker_without_past_next_run() -> None:
    # The reported bug: three exited workers, one in `error` with a next run in the past.
    records = [
        rec("w1", "error", 60, status={"next_run": NOW - 30}),
        rec("w2", "running", 60),
        rec("w3", "running", 0, final=True),
    ]
    out = summarize_status("running", records, now=NOW)
    assert out["state"] == NO_LIVE_WORKER
    assert out["wanted"] == "running"
    assert out["next_run"] is None and out["since"] is None
    assert out["workers"] == {}


def test_stale_worker_drops_out_but_its_counters_stay() -> None:
    records = [
        rec("gone", "error", 60, status={"counters": {"delivered_requests": 4}}),
        rec("here", "running", 1, status={"counters": {"delivered_requests": 1}}),
    ]
    out = summarize_status("running", records, now=NOW)
    assert out["state"] == "running"
    assert out["workers"] == {"here": "running"}
    assert out["counters"]["delivered_requests"] == 5


def test_stopped_everywhere_is_stopped_and_not_yet_is_the_real_state() -> None:
    stopped = [rec("w1", "stopped", 1), rec("w2", "stopped", 2)]
    assert summarize_status("stopped", stopped, now=NOW)["state"] == "stopped"
    mixed = [rec("w1", "stopped", 1), rec("w2", "running", 2)]
    out = summarize_status("stopped", mixed, now=NOW)
    assert (out["state"], out["wanted"]) == ("running", "stopped")


def test_config_version_is_stable_and_changes_with_the_config() -> None:
    a = {"id": "j", "label": "x", "audiences": ["a"]}
    assert config_version(a) == config_version(dict(reversed(list(a.items()))))
    assert config_version(a) != config_version({**a, "label": "y"})
    assert len(config_version(a)) == 12


def test_workers_behind_names_live_workers_not_on_the_version() -> None:
    job = [
        rec("new", "running", 1, version="v2"),
        rec("old", "running", 1, version="v1"),
        rec("dead", "running", 60, version="v1"),
    ]
    others = [rec("idle", "running", 1, version="z")]
    workers = live_workers(job + others, NOW)
    assert workers == {"new", "old", "idle"}
    # A worker without a record of the job does not hold it: it is not behind.
    assert workers_behind("v2", job, workers, NOW) == ["old"]
    assert workers_behind("v2", job[:1], workers, NOW) == []
    # Until some live worker runs the version, every live worker is named (nobody took the
    # job up yet), also when only a dead one had it.
    assert workers_behind("v2", job[1:], workers, NOW) == ["idle", "new", "old"]
    assert workers_behind("v2", [rec("dead", "running", 60, version="v2")], workers, NOW) == [
        "idle",
        "new",
        "old",
    ]


def test_summary_lists_worker_versions() -> None:
    out = summarize_status("running", [rec("w1", "running", 1, version="v9")], now=NOW)
    assert out["worker_versions"] == {"w1": "v9"}
