"""Baselines for existing members (issue 10, item 1): pure parts."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.backfill import current_members
from app.domain.baselines import (
    jobs_needing_baselines,
    marker_key,
    marker_value,
    members_without_baseline,
    with_baselines,
)
from app.domain.errors import InvalidRecord
from app.domain.jobs import JobConfig, parse_job_config
from app.domain.records import parse_record
from app.domain.routing import UserState, route


def job(fields: list[str] | None = None, **overrides: Any) -> JobConfig:
    doc: dict[str, Any] = {
        "id": "job1",
        "type": "audience_triggers",
        "label": "L",
        "audiences": ["vip"],
        "webhook_url": "https://hooks.example.com/in",
        "trigger_fields": fields if fields is not None else ["plan"],
    }
    doc.update(overrides)
    return parse_job_config(doc)


def state(audiences: dict[str, str], last: tuple[int, int] | None, **fps: str) -> bytes:
    return UserState(audiences=audiences, fingerprints=dict(fps), last=last).to_bytes()


def test_a_job_needs_baselines_until_its_marker_has_its_current_fields() -> None:
    j = job()
    stored: dict[bytes, bytes] = {}
    assert jobs_needing_baselines([j], stored) == [j]
    stored[marker_key(j.id)] = marker_value(j)
    assert jobs_needing_baselines([j], stored) == []
    edited = job(["city"])
    assert jobs_needing_baselines([edited], stored) == [edited]
    assert jobs_needing_baselines([job([])], {}) == []  # no trigger fields: nothing to do
    stored[marker_key(j.id)] = b"not json"
    assert jobs_needing_baselines([j], stored) == [j]


def test_members_without_baseline_are_the_jobs_members_lacking_its_fingerprint() -> None:
    j = job()
    fp_same_fields = "x:" + "0" * 24
    current = UserState(audiences={"vip": "s"}, last=(0, 1))
    done_fp = route(
        parse_record(b'{"id":"d","data":{"plan":"a"}}'),
        current,
        [j],
    )[1].fingerprints[j.id]
    stored = {
        b"member": state({"vip": "s"}, (0, 7)),
        b"other-audience": state({"news": "s"}, (0, 8)),
        b"done": state({"vip": "s"}, (0, 9), job1=done_fp),
        b"stale-fields": state({"vip": "s"}, (0, 10), job1=fp_same_fields),
        b"no-pointer": state({"vip": "s"}, None),
        marker_key("other"): b'{"job_id":"other","tag":"t"}',
    }
    got = {w.key: (w.offset, w.jobs) for w in members_without_baseline(stored, 0, [j])}
    assert got == {b"member": (7, ("job1",)), b"stale-fields": (10, ("job1",))}


def test_with_baselines_sets_the_fingerprint_then_the_next_change_is_sent() -> None:
    j = job()
    before = state({"vip": "seg"}, (0, 7))
    after = with_baselines(before, 7, 0, {"plan": "free"}, {j.id: j}, [j.id])
    assert after is not None
    assert with_baselines(after, 7, 0, {"plan": "free"}, {j.id: j}, [j.id]) is None  # once
    events, _ = route(
        parse_record(b'{"id":"u","data":{"plan":"pro"}}'), UserState.from_bytes(after), [j]
    )
    assert [e["event"] for je in events for e in je.segment_events] == ["change"]


def test_with_baselines_leaves_a_state_that_moved_on() -> None:
    j = job()
    moved = state({"vip": "seg"}, (0, 12))
    assert with_baselines(moved, 7, 0, {"plan": "free"}, {j.id: j}, [j.id]) is None


def test_a_marker_is_never_a_member_for_backfill() -> None:
    stored = {marker_key("job1"): marker_value(job()), b"u": state({"vip": "s"}, (0, 1))}
    assert [m.user_id for m in current_members(stored, job())] == ["u"]


def test_user_ids_cannot_forge_a_marker() -> None:
    raw = orjson.dumps({"id": "\x00baseline:job1", "data": {}})
    try:
        parse_record(raw)
    except InvalidRecord as exc:
        assert "NUL" in exc.reason
    else:
        raise AssertionError("an id with NUL was accepted")


values = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=3), st.booleans())


@settings(max_examples=200, deadline=None)
@given(
    old=st.dictionaries(st.sampled_from(["plan", "city", "n"]), values, max_size=3),
    new=st.dictionaries(st.sampled_from(["plan", "city", "n"]), values, max_size=3),
)
def test_the_first_change_after_a_baseline_is_sent_iff_a_trigger_field_differs(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    j = job(["plan", "city"])
    baseline = with_baselines(state({"vip": "seg"}, (0, 3)), 3, 0, old, {j.id: j}, [j.id])
    assert baseline is not None
    record = parse_record(orjson.dumps({"id": "u", "data": new}))
    events, _ = route(record, UserState.from_bytes(baseline), [j])
    differs = any(orjson.dumps(old.get(f)) != orjson.dumps(new.get(f)) for f in ("plan", "city"))
    assert bool(events) == differs
