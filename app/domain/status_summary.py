"""One job's status as `webhooks jobs show` reports it, from its workers' status records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# Which worker's state speaks for the job: the worst one.
_SEVERITY = {"stopped": 0, "running": 1, "sleeping": 2, "error": 3, "failed": 4}
COUNTERS = (
    "delivered_requests",
    "delivered_events",
    "omitted_events",
    "retried_requests",
    "failed_requests",
)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def summarize_status(desired: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = [r["status"] for r in records if isinstance(r.get("status"), dict)]
    counters = {
        name: sum(int(s.get("counters", {}).get(name, 0)) for s in statuses) for name in COUNTERS
    }
    errors = [s["last_error"] for s in statuses if s.get("last_error")]
    last_error = max(errors, key=lambda e: e.get("at", 0.0)) if errors else None
    if desired == "stopped":
        state, since, next_run = "stopped", None, None
        stopped = [s for s in statuses if s.get("state") == "stopped"]
        if stopped:
            since = min(s.get("since", 0.0) for s in stopped)
    elif not statuses:
        state, since, next_run = "running", None, None
    else:
        worst = max(statuses, key=lambda s: _SEVERITY.get(s.get("state", "running"), 1))
        state = worst.get("state", "running")
        if state == "stopped":
            state = "running"  # resumed; workers have not reported yet
        since = worst.get("since")
        runs = [s["next_run"] for s in statuses if s.get("state") == state and s.get("next_run")]
        next_run = min(runs) if runs else None
    return {
        "state": state,
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
        "workers": {
            r.get("worker_id", "?"): r["status"].get("state")
            for r in records
            if isinstance(r.get("status"), dict)
        },
    }
