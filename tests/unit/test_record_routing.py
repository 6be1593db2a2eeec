"""The router's per-record path: every record is routed or dead-lettered, nothing raises,
every output fits under the broker's message size, a refused record keeps the old state."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.errors import ConfigError
from app.domain.jobs import JobConfig, parse_job_config
from app.domain.record_routing import (
    MAX_AUDIENCES_PER_USER,
    MAX_OUTPUT_BYTES,
    MAX_RECORD_BYTES,
    RecordPlan,
    Source,
    plan_record,
)

DL = "dead"
CHANGELOG = "changelog"
SOURCE = Source("in", 3, 42)


def job(audiences: list[str] | None = None, **overrides: Any) -> JobConfig:
    doc: dict[str, Any] = {
        "id": "job1",
        "type": "audience_triggers",
        "label": "L",
        "audiences": audiences or ["vip"],
        "webhook_url": "https://hooks.example.com/in",
        "trigger_fields": ["plan"],
    }
    doc.update(overrides)
    return parse_job_config(doc)


JOBS = {"job1": job()}
EMPTY: dict[bytes, bytes] = {}


def doc(user: Any = "u1", data: Any = None, events: Any = None) -> bytes:
    return orjson.dumps(
        {
            "id": user,
            "data": {} if data is None else data,
            "segment_events": events or [{"id": "s1", "slug": "vip", "event": "enter"}],
        }
    )


def plan(raw: bytes | None, state: dict[bytes, bytes] | None = None) -> RecordPlan:
    store = state if state is not None else {}
    return plan_record(raw, b"k", SOURCE, store.get, JOBS, DL, CHANGELOG)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def raw_nested(depth: int) -> bytes:
    """A record whose data is nested `depth` levels (built as text: orjson cannot dump it)."""
    inner = '{"x":' * depth + '"leaf"' + "}" * depth
    return (
        '{"id":"u1","data":{"deep":' + inner + '},"segment_events":'
        '[{"id":"s1","slug":"vip","event":"enter"}]}'
    ).encode()


def dead_letter(p: RecordPlan) -> dict[str, Any]:
    assert p.dead_lettered and p.new_state is None
    [(topic, _key, value, _part)] = p.records
    assert topic == DL and value is not None
    letter: dict[str, Any] = orjson.loads(value)
    return letter


def test_valid_record_routes_and_writes_state() -> None:
    p = plan(doc())
    topics = [r[0] for r in p.records]
    assert topics == [JOBS["job1"].queue_topic, CHANGELOG]
    assert p.new_state is not None and orjson.loads(p.new_state)["last"] == [3, 42]


@pytest.mark.parametrize("depth", [255, 300, 1000, 1022, 1500, 2000])
def test_deep_nesting_is_dead_lettered_with_the_reason(depth: int) -> None:
    letter = dead_letter(plan(raw_nested(depth)))
    assert "input record" in letter["reason"]
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("in", 3, 42)


def test_oversize_record_is_dead_lettered_with_a_truncated_copy() -> None:
    raw = b"\xff" * (5 * 1024 * 1024)  # 5 MiB, not JSON
    p = plan(raw)
    letter = dead_letter(p)
    assert f"more than the {MAX_RECORD_BYTES}" in letter["reason"]
    assert letter["event"]["truncated"] is True and letter["event"]["size"] == len(raw)
    assert len(letter["event"]["sha256"]) == 64
    assert len(p.records[0][2] or b"") < 64 * 1024


def test_big_id_and_profile_under_the_record_limit_are_refused_before_writing() -> None:
    raw = doc(user="i" * 400_000, data={"blob": "p" * 500_000})
    letter = dead_letter(plan(raw))
    assert "id:" in letter["reason"]


def test_record_escaping_to_a_large_dead_letter_is_truncated() -> None:
    raw = b'"' * 900_000  # each byte escapes to two in the dead letter
    p = plan(raw)
    assert len(p.records[0][2] or b"") <= MAX_OUTPUT_BYTES
    assert dead_letter(p)["event"]["truncated"] is True


def test_too_many_audiences_keeps_the_previous_state() -> None:
    state: dict[bytes, bytes] = {}
    first = plan(doc(), state)
    assert first.new_state is not None
    state[b"u1"] = first.new_state
    many = [
        {"id": f"s{n}", "slug": f"a{n}", "event": "enter"} for n in range(MAX_AUDIENCES_PER_USER)
    ]
    letter = dead_letter(plan(doc(events=many), state))
    assert "previous state kept" in letter["reason"]
    assert state[b"u1"] == first.new_state


def test_valid_record_after_hostile_ones_still_routes() -> None:
    for raw in (raw_nested(2000), b"\x00" * 10, b"[]", doc(user=None)):
        assert plan(raw).dead_lettered
    assert not plan(doc(user="u2")).dead_lettered


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    user=st.one_of(st.text(), st.integers(), json_values),
    data=json_values,
    slugs=st.lists(st.text(min_size=1), max_size=5),
    depth=st.integers(min_value=0, max_value=2000),
    pad=st.integers(min_value=0, max_value=2 * 1024 * 1024),
    kind=st.sampled_from(["enter", "exit", "change", ""]),
)
def test_any_record_is_routed_or_dead_lettered(
    user: Any, data: Any, slugs: list[str], depth: int, pad: int, kind: str
) -> None:
    events = [{"id": "s", "slug": s, "event": kind} for s in slugs]
    body = {"id": user, "data": {"v": data, "pad": "x" * pad}, "segment_events": events}
    raw = json.dumps(body).encode()  # stdlib: big integers and Infinity too
    if depth:
        raw = raw[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    try:
        jobs = {"job1": job(audiences=slugs[:3] or ["vip"])}
    except ConfigError:  # not a valid audience list for a job: route against the default job
        jobs = JOBS
    p = plan_record(raw, b"k", SOURCE, EMPTY.get, jobs, DL, CHANGELOG)
    assert p.records, "a record must cause at least a dead letter or a state change"
    assert all(len(value or b"") <= MAX_OUTPUT_BYTES for _, _, value, _ in p.records)
    if p.dead_lettered:
        assert [r[0] for r in p.records] == [DL] and p.new_state is None
    # a valid record after it still routes
    assert not plan_record(
        doc(user="ok"), b"k", SOURCE, EMPTY.get, JOBS, DL, CHANGELOG
    ).dead_lettered
