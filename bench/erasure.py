"""What erasing users costs the router, pure (no Kafka): `plan_record` for profile updates
and for tombstones of members of two audiences of 10 jobs that send exits (20 exits, the
changelog tombstone). `.venv/bin/python -m bench.erasure [-n 50000]`."""

from __future__ import annotations

import argparse
import time

import orjson

from app.domain.jobs import JobConfig, parse_job_config
from app.domain.record_routing import Source, plan_record


def jobs(count: int) -> dict[str, JobConfig]:
    return {
        f"j{i}": parse_job_config(
            {
                "id": f"j{i}",
                "type": "audience_triggers",
                "label": "bench",
                "audiences": ["a", "b"],
                "webhook_url": "https://hooks.example.com/in",
            }
        )
        for i in range(count)
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50_000, help="users")
    parser.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    n, configs = args.n, jobs(args.jobs)
    store: dict[bytes, bytes] = {}
    enter = [
        {"id": "s1", "slug": "a", "event": "enter"},
        {"id": "s2", "slug": "b", "event": "enter"},
    ]
    for i in range(n):
        raw = orjson.dumps({"id": f"u{i}", "data": {"plan": "x"}, "segment_events": enter})
        plan = plan_record(raw, f"u{i}".encode(), Source("in", 0, i), store.get, configs, "d", "c")
        assert plan.state_key is not None and plan.new_state is not None
        plan.apply_to(store)
    started = time.perf_counter()
    for i in range(n):
        raw = orjson.dumps({"id": f"u{i}", "data": {"plan": "y"}, "segment_events": []})
        plan_record(raw, f"u{i}".encode(), Source("in", 0, n + i), store.get, configs, "d", "c")
    updates = time.perf_counter() - started
    started = time.perf_counter()
    written = 0
    for i in range(n):
        source = Source("in", 0, 2 * n + i)
        plan = plan_record(None, f"u{i}".encode(), source, store.get, configs, "d", "c", "now")
        written += len(plan.records)
    erasures = time.perf_counter() - started
    print(f"profile updates: {n / updates:,.0f}/s")
    print(f"tombstones: {n / erasures:,.0f}/s ({written / n:.0f} records each)")


if __name__ == "__main__":
    main()
