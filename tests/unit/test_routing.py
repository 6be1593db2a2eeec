"""Trigger evaluation: which events each job owes for one record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.domain.jobs import JobConfig, parse_job_config
from app.domain.records import UserRecord, parse_record
from app.domain.routing import UserState, route


def job(**overrides: Any) -> JobConfig:
    doc: dict[str, Any] = {
        "id": "job1",
        "type": "audience_triggers",
        "label": "L",
        "audiences": ["vip"],
        "webhook_url": "https://hooks.example.com/in",
    }
    doc.update(overrides)
    return parse_job_config(doc)


def record(data: dict[str, Any] | None = None, *events: tuple[str, str]) -> UserRecord:
    segment_events = [{"id": f"seg-{slug}", "slug": slug, "event": ev} for ev, slug in events]
    doc = {"id": "u1", "data": data or {}, "segment_events": segment_events}
    return parse_record(orjson.dumps(doc))


def kinds(out: list[Any]) -> list[tuple[str, str]]:
    return [(e["event"], e["slug"]) for je in out for e in je.segment_events]


@pytest.mark.parametrize(
    ("trigger_events", "expected"),
    [
        ("enter_exit", [("enter", "vip"), ("exit", "vip")]),
        ("enter", [("enter", "vip")]),
        ("exit", [("exit", "vip")]),
    ],
)
def test_enter_exit_filtered_by_trigger_events(
    trigger_events: str, expected: list[tuple[str, str]]
) -> None:
    j = job(trigger_events=trigger_events)
    out1, state = route(record({}, ("enter", "vip")), None, [j])
    out2, _ = route(record({}, ("exit", "vip")), state, [j])
    assert kinds(out1) + kinds(out2) == expected
    assert all(je.job_id == "job1" for je in out1 + out2)


def test_events_for_other_audiences_are_ignored() -> None:
    out, state = route(record({}, ("enter", "other"), ("exit", "gone")), None, [job()])
    assert out == []
    assert state.audiences == {"other": "seg-other"}


def test_only_the_jobs_own_audiences_are_sent() -> None:
    out, _ = route(record({}, ("enter", "other"), ("enter", "vip")), None, [job()])
    assert kinds(out) == [("enter", "vip")]


def test_change_in_trigger_field_yields_change_event() -> None:
    j = job(trigger_fields=["plan"])
    _, state = route(record({"plan": "free"}, ("enter", "vip")), None, [j])
    out, _ = route(record({"plan": "pro"}), state, [j])
    assert len(out) == 1
    [event] = out[0].segment_events
    assert event["event"] == "change"
    assert event["slug"] == "vip"
    assert event["id"] == "seg-vip"


def test_unchanged_trigger_field_yields_nothing() -> None:
    j = job(trigger_fields=["plan"])
    _, state = route(record({"plan": "free"}, ("enter", "vip")), None, [j])
    out, _ = route(record({"plan": "free", "name": "new"}), state, [j])
    assert out == []


def test_change_in_non_trigger_field_yields_nothing() -> None:
    j = job(trigger_fields=["plan"])
    _, state = route(record({"plan": "free", "name": "a"}, ("enter", "vip")), None, [j])
    out, _ = route(record({"plan": "free", "name": "b"}), state, [j])
    assert out == []


def test_first_record_for_a_user_sends_no_change() -> None:
    j = job(trigger_fields=["plan"])
    state = UserState(audiences={"vip": "seg-vip"})
    out, after = route(record({"plan": "pro"}), None, [j])
    assert out == []
    # Even with a known membership, a user without a fingerprint baseline gets no change.
    out, after = route(record({"plan": "pro"}), state, [j])
    assert out == []
    assert "job1" in after.fingerprints


def test_user_not_in_the_jobs_audiences_gets_no_change() -> None:
    j = job(trigger_fields=["plan"])
    _, state = route(record({"plan": "free"}, ("enter", "other")), None, [j])
    out, after = route(record({"plan": "pro"}), state, [j])
    assert out == []
    assert after.fingerprints == {}


def test_user_who_exits_stops_getting_change_events() -> None:
    j = job(trigger_fields=["plan"])
    _, state = route(record({"plan": "free"}, ("enter", "vip")), None, [j])
    out, state = route(record({"plan": "pro"}, ("exit", "vip")), state, [j])
    assert kinds(out) == [("exit", "vip")]
    out, state = route(record({"plan": "gold"}), state, [j])
    assert out == []
    assert state.audiences == {}


def test_user_state_round_trip() -> None:
    state = UserState(audiences={"vip": "seg-1"}, fingerprints={"job1": "abc"})
    assert UserState.from_bytes(state.to_bytes()) == state
    assert UserState.from_bytes(None) is None
    assert UserState.from_bytes(b"") is None


def test_enrichment_jobs_get_enter_and_exit() -> None:
    j = job(
        type="user_enrichment",
        webhook_url="https://enrich.example.com/in",
        export_fields=["email"],
    )
    out1, state = route(record({}, ("enter", "vip")), None, [j])
    out2, _ = route(record({}, ("exit", "vip")), state, [j])
    assert kinds(out1) + kinds(out2) == [("enter", "vip"), ("exit", "vip")]


def test_each_job_gets_its_own_events() -> None:
    a = job(id="a", audiences=["vip"])
    b = job(id="b", audiences=["other"])
    out, _ = route(record({}, ("enter", "vip"), ("enter", "other")), None, [a, b])
    assert [(je.job_id, kinds([je])) for je in out] == [
        ("a", [("enter", "vip")]),
        ("b", [("enter", "other")]),
    ]


def test_editing_trigger_fields_alone_sends_no_change() -> None:
    """BUG: the fingerprint is keyed by job id only, so changing the job's trigger_fields
    makes every member's next record a spurious `change` though no value changed."""
    _, state = route(
        record({"plan": "free"}, ("enter", "vip")), None, [job(trigger_fields=["plan"])]
    )
    edited = job(trigger_fields=["plan", "tier"])
    out, _ = route(record({"plan": "free"}), state, [edited])
    assert out == []
