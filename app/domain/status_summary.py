"""One job's status as `webhooks jobs show` reports it, from its workers' status records.

Liveness: each worker rewrites its record of every job it knows at least every heartbeat
(`HEARTBEAT_S`, or `WEBHOOKS_STATUS_HEARTBEAT_S`), even unchanged, with `updated_at` set to
the time of writing. A record older than `STALE_HEARTBEATS` heartbeats (15 s by default) is
from a worker that is gone: it no longer speaks for the job's state. A worker that stops
cleanly writes a last record marked `final`, which drops out at once. Counters and the last
error still include every record (they are history, not state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from app.domain.timefmt import rfc3339

# Which worker's state speaks for the job: the worst one.
_SEVERITY = {"stopped": 0, "running": 1, "sleeping": 2, "error": 3, "failed": 4}
COUNTERS = (
    "delivered_requests",
    "delivered_events",
    "omitted_events",
    "failed_requests",
)
HEARTBEAT_S = 5.0
"""Default interval at which a worker rewrites each of its status records."""
STALE_HEARTBEATS = 3
"""Missed heartbeats after which a worker's record no longer counts."""
STALE_AFTER_S = STALE_HEARTBEATS * HEARTBEAT_S
"""Default age (15 s) past which a status record is from a worker that is gone."""
NO_LIVE_WORKER = "not running: no live worker"
"""The state of a job that no live worker reports."""


def stale_after(heartbeat_s: float) -> float:
    """The age past which a record is stale, for workers heartbeating every `heartbeat_s`."""
    return STALE_HEARTBEATS * heartbeat_s


def iso(ts: float | None) -> str | None:
    return rfc3339(ts, "seconds")


def config_version(config: Mapping[str, Any]) -> str:
    """A short, stable version of a job config (its JSON form): workers report the version
    they run, `jobs apply --wait` compares it with the stored one."""
    return hashlib.sha256(orjson.dumps(dict(config), option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def is_live(record: Mapping[str, Any], now: float, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether `record` is from a worker still running: not final, and written no longer
    than `stale_after_s` ago (a record without `updated_at` is not live)."""
    if record.get("final") or not isinstance(record.get("status"), dict):
        return False
    updated = record.get("updated_at")
    if not isinstance(updated, int | float):
        return False
    return now - float(updated) <= stale_after_s


def live_records(
    records: Iterable[dict[str, Any]], now: float | None, stale_after_s: float = STALE_AFTER_S
) -> list[dict[str, Any]]:
    """The records that still speak for a worker (all non-final ones when `now` is None)."""
    if now is None:
        return [r for r in records if isinstance(r.get("status"), dict) and not r.get("final")]
    return [r for r in records if is_live(r, now, stale_after_s)]


def summarize_status(
    desired: str,
    records: list[dict[str, Any]],
    now: float | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> dict[str, Any]:
    """The job's real state from its live workers' records (`wanted` is what the user asked
    for). With `now`, records older than `stale_after_s` are left out of the state and the
    workers; without it, every non-final record counts."""
    statuses = [r["status"] for r in records if isinstance(r.get("status"), dict)]
    counters = {
        name: sum(int(s.get("counters", {}).get(name, 0)) for s in statuses) for name in COUNTERS
    }
    omissions = [s["last_omission"] for s in statuses if s.get("last_omission")]
    last_omission = max(omissions, key=lambda e: e.get("at", 0.0)) if omissions else None
    errors = [s["last_error"] for s in statuses if s.get("last_error")]
    last_error = max(errors, key=lambda e: e.get("at", 0.0)) if errors else None
    live = live_records(records, now, stale_after_s)
    live_statuses = [r["status"] for r in live]
    since: float | None
    next_run: float | None
    if not live_statuses:
        state, since, next_run = NO_LIVE_WORKER, None, None
    else:
        worst = max(live_statuses, key=lambda s: _SEVERITY.get(s.get("state", "running"), 1))
        state = worst.get("state", "running")
        since = worst.get("since")
        runs = [
            s["next_run"] for s in live_statuses if s.get("state") == state and s.get("next_run")
        ]
        next_run = min(runs) if runs else None
    return {
        "state": state,
        "wanted": desired,
        "since": iso(since),
        "next_run": iso(next_run),
        "counters": counters,
        "last_error": (
            {
                "at": iso(last_error.get("at")),
                "status": last_error.get("status"),
                "reason": last_error.get("reason"),
            }
            if last_error
            else None
        ),
        "last_omission": (
            {
                "at": iso(last_omission.get("at")),
                "status": last_omission.get("status"),
                "events": last_omission.get("events"),
                "reason": last_omission.get("reason"),
            }
            if last_omission
            else None
        ),
        "workers": {r.get("worker_id", "?"): r["status"].get("state") for r in live},
        "worker_versions": {r.get("worker_id", "?"): r.get("version") for r in live},
    }


def live_workers(
    records: Iterable[dict[str, Any]], now: float, stale_after_s: float = STALE_AFTER_S
) -> set[str]:
    """Workers with at least one live record (of any job)."""
    return {str(r.get("worker_id", "?")) for r in live_records(records, now, stale_after_s)}


def workers_behind(
    version: str,
    job_records: Iterable[dict[str, Any]],
    workers: Iterable[str],
    now: float,
    stale_after_s: float = STALE_AFTER_S,
) -> list[str]:
    """Who keeps the job from running `version`: the live workers whose live record of it
    reports another version; or, while no live record reports `version` (no worker has
    taken the job up yet), all live `workers`. A job is delivered by the one worker that
    holds its delivery slot, so the others have no live record of it."""
    running = {
        str(r.get("worker_id", "?")): r.get("version")
        for r in live_records(job_records, now, stale_after_s)
    }
    if version not in running.values():
        return sorted(workers)
    return sorted(w for w, v in running.items() if v != version)
