"""Property tests of erasure and the state changelog: whatever the order of records and
tombstones, a worker restoring the state from the changelog (compacted or not, at any
point) holds exactly the live state, no erased user survives, and an erased user who comes
back starts afresh."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.compaction import latest_values
from app.domain.jobs import JobConfig, parse_job_config
from app.domain.record_routing import RecordPlan, Source, plan_record

DL = "dead"
CHANGELOG = "changelog"
TOPIC = "in"
PARTITION = 2
USERS = ["u1", "u2", "u3"]
SLUGS = ["vip", "gold", "new"]
NOW = "2026-12-07T10:00:00.000Z"


def job_config(doc: dict[str, Any]) -> JobConfig:
    return parse_job_config(
        {"label": "L", "webhook_url": "https://hooks.example.com/in"}
        | {"type": "audience_triggers"}
        | doc
    )


JOBS = {
    "fields": job_config(
        {"id": "fields", "audiences": ["vip", "gold"], "trigger_fields": ["plan"]}
    ),
    "exits": job_config({"id": "exits", "audiences": ["gold", "new"], "trigger_events": "exit"}),
    "enrich": job_config(
        {"id": "enrich", "type": "user_enrichment", "audiences": ["new"], "export_fields": ["plan"]}
    ),
}

Op = tuple[str, dict[str, Any] | None]  # user, the record's fields (None: a tombstone)

segment_event = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["s1", "s2"]),
        "slug": st.sampled_from(SLUGS),
        "event": st.sampled_from(["enter", "exit"]),
    }
)
record_fields = st.fixed_dictionaries(
    {
        "data": st.dictionaries(
            st.sampled_from(["plan", "email", "n"]),
            st.none() | st.integers(0, 2) | st.sampled_from(["a", "b"]),
            max_size=3,
        ),
        "segment_events": st.lists(segment_event, max_size=4),
    }
)
operation: st.SearchStrategy[Op] = st.tuples(st.sampled_from(USERS), st.none() | record_fields)


def raw_record(user: str, fields: dict[str, Any]) -> bytes:
    return orjson.dumps({"id": user, **fields})


def apply(store: dict[bytes, bytes], plan: RecordPlan) -> None:
    """Exactly what the router does with a plan."""
    plan.apply_to(store)


Change = tuple[bytes | None, bytes | None]


def run(
    ops: list[tuple[int, str, dict[str, Any] | None]],
) -> tuple[dict[bytes, bytes], list[Change], list[RecordPlan]]:
    """Feed (offset, user, fields) in order; the live map, the changelog, the plans."""
    store: dict[bytes, bytes] = {}
    log: list[Change] = []
    plans = []
    for offset, user, fields in ops:
        raw = None if fields is None else raw_record(user, fields)
        source = Source(TOPIC, PARTITION, offset)
        plan = plan_record(raw, user.encode(), source, store.get, JOBS, DL, CHANGELOG, NOW)
        assert not plan.dead_lettered
        for topic, key, value, part in plan.records:
            if topic == CHANGELOG:
                assert part == PARTITION
                log.append((key, value))
        apply(store, plan)
        plans.append(plan)
    return store, log, plans


def compacted(records: list[Change], keep_tombstones: bool) -> list[Change]:
    """What Kafka's compaction leaves of `records`: the last record per key (a tombstone is
    kept until delete.retention.ms passes, then dropped)."""
    last: dict[bytes | None, bytes | None] = {}
    for key, value in records:
        last.pop(key, None)
        last[key] = value
    return [(k, v) for k, v in last.items() if keep_tombstones or v is not None]


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=25), st.data())
def test_restored_state_is_the_live_state_and_erased_users_are_gone(
    ops: list[Op], data: st.DataObject
) -> None:
    indexed = [(offset, user, fields) for offset, (user, fields) in enumerate(ops)]
    live, log, _plans = run(indexed)

    # (a) a restoring worker replays the changelog
    restored = latest_values(log)
    assert restored == live

    # (b) a user is there iff a record came after their last tombstone (a first-seen user's
    # record always writes a state), and holds what those records alone make of them
    for user in USERS:
        mine = [(offset, u, fields) for offset, u, fields in indexed if u == user]
        tombstones = [i for i, (_o, _u, fields) in enumerate(mine) if fields is None]
        since = mine[tombstones[-1] + 1 :] if tombstones else mine
        assert (user.encode() in restored) == bool(since)
        if since:
            alone, _log, _plans = run(since)
            assert restored[user.encode()] == alone[user.encode()]

    # (c) Kafka compacts the changelog up to any point, then the rest is appended
    cut = data.draw(st.integers(0, len(log)), label="compacted up to")
    keep = data.draw(st.booleans(), label="tombstones kept")
    assert latest_values([*compacted(log[:cut], keep), *log[cut:]]) == live


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=25))
def test_every_erasure_of_a_known_user_writes_a_changelog_tombstone(ops: list[Op]) -> None:
    indexed = [(offset, user, fields) for offset, (user, fields) in enumerate(ops)]
    _live, _log, plans = run(indexed)
    seen: set[str] = set()
    for (_offset, user, fields), plan in zip(indexed, plans, strict=True):
        writes = [(k, v) for t, k, v, _p in plan.records if t == CHANGELOG]
        if fields is None:
            assert plan.erasure is not None and plan.erasure.known == (user in seen)
            assert writes == ([(user.encode(), None)] if user in seen else [])
            seen.discard(user)
        else:
            seen.add(user)
            assert all(v is not None for _k, v in writes)


# -- an erased user who comes back --------------------------------------------------------


FIELDS_JOB = job_config(
    {"id": "f", "audiences": ["vip"], "trigger_fields": ["plan"], "trigger_events": "exit"}
)


def events_sent(ops: list[tuple[str, dict[str, Any] | None]]) -> list[list[str]]:
    """The segment events the fields job is sent for each operation on u1, in order."""
    store: dict[bytes, bytes] = {}
    out = []
    for offset, (user, fields) in enumerate(ops):
        raw = None if fields is None else raw_record(user, fields)
        source = Source(TOPIC, 0, offset)
        plan = plan_record(raw, user.encode(), source, store.get, {"f": FIELDS_JOB}, DL, CHANGELOG)
        apply(store, plan)
        sent = []
        for topic, _key, value, _part in plan.records:
            if topic == FIELDS_JOB.queue_topic and value is not None:
                sent += [ev["event"] for ev in orjson.loads(value)["user"]["segment_events"]]
        out.append(sent)
    return out


def plan_record_fields(plan: str, enter: bool = False) -> dict[str, Any]:
    events = [{"id": "s1", "slug": "vip", "event": "enter"}] if enter else []
    return {"data": {"plan": plan}, "segment_events": events}


def test_erased_user_who_comes_back_is_first_seen_and_sends_no_change() -> None:
    before = [
        ("u1", plan_record_fields("a", enter=True)),  # baseline set, enter not sent (exits)
        ("u1", plan_record_fields("b")),  # the plan changed: a change
    ]
    back = ("u1", plan_record_fields("c", enter=True))
    # Without the erasure the same record is a change of a known member ...
    assert events_sent([*before, back]) == [[], ["change"], ["change"]]
    # ... after it, a first-seen user: the exit of the erasure, then nothing.
    assert events_sent([*before, ("u1", None), back]) == [[], ["change"], ["exit"], []]
    # The new baseline holds: the next change is sent again.
    again = ("u1", plan_record_fields("d"))
    assert events_sent([*before, ("u1", None), back, again])[-1] == ["change"]
