"""Records the service writes validate against the JSON Schemas in `topics/` (issue 11), so
a schema cannot drift from the code that writes its topic. Each record is made by the code
path that writes it (the functions the router, delivery, backfill and CLI call)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from app.domain.backfill import BackfillProgress, backfill_request, progress_record
from app.domain.baselines import marker_value
from app.domain.enrichment import answer_records
from app.domain.erasure import ErasureIds, erasure_record, log_entries
from app.domain.job_log import KINDS, entry
from app.domain.job_state import JobStatus, LastError, Omission
from app.domain.jobs import parse_job_config
from app.domain.queue_record import QueuedEvent
from app.domain.record_routing import Source, plan_record
from app.domain.status_record import encode_status_record
from app.domain.stored_job import StoredJob
from app.domain.trace_context import TraceContext
from app.transport.sinks import deadletter_records

TOPICS = Path(__file__).resolve().parents[2] / "topics"
CHANGELOG = "app-user-state-changelog"
DEAD = "webhook-deadletter"


def validator(name: str) -> Draft202012Validator:
    doc = json.loads((TOPICS / f"{name}.json").read_text())
    return Draft202012Validator(doc["value_schema"])


def valid(name: str, raw: bytes | dict[str, Any] | None) -> None:
    value = orjson.loads(raw) if isinstance(raw, bytes) else raw
    errors = [e.message for e in validator(name).iter_errors(value)]
    assert errors == [], f"{name}: {errors} in {value!r}"


def triggers(**extra: Any) -> Any:
    return parse_job_config(
        {
            "id": "j1",
            "type": "audience_triggers",
            "label": "L",
            "audiences": ["vip"],
            "webhook_url": "https://hooks.example.com/in",
            **extra,
        }
    )


@pytest.mark.parametrize("path", sorted(TOPICS.glob("*.json")), ids=lambda p: p.stem)
def test_every_declared_schema_is_a_valid_schema(path: Path) -> None:
    Draft202012Validator.check_schema(json.loads(path.read_text())["value_schema"])


profiles = st.dictionaries(
    st.text(min_size=1, max_size=5),
    st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=5), st.booleans()),
    max_size=4,
)


@settings(max_examples=100, deadline=None)
@given(
    data=profiles,
    kind=st.sampled_from(["enter", "exit"]),
    plan=st.text(max_size=3),
    trace=st.sampled_from([None, TraceContext(f"00-{'a' * 32}-{'b' * 16}-01", "k=v")]),
)
def test_router_output_matches_queue_changelog_and_deadletter_schemas(
    data: dict[str, Any], kind: str, plan: str, trace: TraceContext | None
) -> None:
    jobs = {"j1": triggers(trigger_fields=["plan"])}
    enter_or_exit = {"id": "s", "slug": "vip", "event": kind}
    state: dict[bytes, bytes] = {}
    for offset, doc in enumerate(
        [
            {"id": "u1", "data": data, "segment_events": [enter_or_exit]},
            {"id": "u1", "data": {**data, "plan": plan}, "segment_events": []},
            {"id": "u1", "data": "not an object"},
        ]
    ):
        plan_ = plan_record(
            orjson.dumps(doc),
            b"u1",
            Source("in", 0, offset, trace),
            state.get,
            jobs,
            DEAD,
            CHANGELOG,
        )
        for topic, _key, value, _partition in plan_.records:
            name = {CHANGELOG: "audience-webhooks-user-state-changelog", DEAD: DEAD}.get(
                topic, "webhook-queue-JOB_ID"
            )
            valid(name, value)
        plan_.apply_to(state)


def test_baseline_markers_match_the_changelog_schema() -> None:
    valid("audience-webhooks-user-state-changelog", marker_value(triggers(trigger_fields=["a"])))


def event() -> QueuedEvent:
    return QueuedEvent("e1", "u1", {"a": 1}, {}, [{"event": "enter", "slug": "vip"}], None, 1)


def test_delivery_dead_letters_match_the_deadletter_schema() -> None:
    for _key, value in deadletter_records("j1", [event()], "omitted: HTTP 400", 400):
        valid(DEAD, value)
    for _key, value in deadletter_records("j1", [], "unreadable queue record", raw=b"\xff{"):
        valid(DEAD, value)


def test_status_records_match_the_status_schema() -> None:
    status = JobStatus(
        state="error",
        since=1.0,
        next_run=2.0,
        last_error=LastError(1.5, "HTTP 503: down", 503),
        last_omission=Omission(1.2, "omitted: HTTP 400", 400, 3),
    )
    valid("webhook-job-status", encode_status_record("j1", "w1", status, "abc", 3.0, final=True))
    valid("webhook-job-status", encode_status_record("j1", "w1", JobStatus(), None, 3.0))
    valid("webhook-job-status", None)  # a tombstone


@pytest.mark.parametrize("kind", KINDS)
def test_job_log_entries_match_the_job_log_schema(kind: str) -> None:
    details: Any = {
        "state": {"from": "running", "to": "error", "reason": "HTTP 503", "next_run": None},
        "omitted": {"reason": "HTTP 400", "status": 400, "events": 2, "event_ids": ["a", "b"]},
        "error": {"reason": "reset", "status": None, "attempt": 3, "retry_in_s": 1.5},
        "backfill": {"request_id": "r1", "members": 10},
        "delivery": {"version": "abc"},
        "replay": {"dead_letters": ["0-1"], "event_ids": ["e1"]},
        "erased": {
            "erasure_id": "ab" * 16,
            "key_id": "none",
            "audiences": ["vip"],
            "events": 1,
            "event_ids": ["e1"],
        },
    }[kind]
    valid("webhook-job-logs", entry("j1", "w1", kind, "message", 1.0, **details).to_bytes())


def test_what_an_erasure_writes_matches_the_schemas() -> None:
    jobs = {"j1": triggers(audiences=["vip", "new"]), "j2": triggers(trigger_events="enter")}
    state: dict[bytes, bytes] = {}
    enter = orjson.dumps(
        {
            "id": "u1",
            "data": {"a": 1},
            "segment_events": [{"id": "s", "slug": "vip", "event": "enter"}],
        }
    )
    first = plan_record(enter, b"u1", Source("in", 0, 0), state.get, jobs, DEAD, CHANGELOG)
    assert first.new_state is not None
    state[b"u1"] = first.new_state
    now = "2026-12-07T10:00:00.000Z"
    erased = plan_record(None, b"u1", Source("in", 0, 1), state.get, jobs, DEAD, CHANGELOG, now)
    assert erased.erasure is not None and not erased.dead_lettered
    queued = [v for t, _k, v, _p in erased.records if t == "webhook-queue-j1" and v is not None]
    assert len(queued) == 1
    valid("webhook-queue-JOB_ID", queued[0])
    valid("audience-webhooks-user-state-changelog", None)  # the state's tombstone
    ids = ErasureIds.from_box(None, "app")
    valid("audience-webhooks-erasures", erasure_record(erased.erasure, ids, 5.0, now))
    for item in log_entries(erased.erasure, jobs, ids, "w1", 5.0):
        valid("webhook-job-logs", item.to_bytes())
    letters = deadletter_records("j1", [QueuedEvent.from_queue_record(queued[0], 1)], "HTTP 400")
    for _key, value in letters:
        valid(DEAD, value)


def test_jobs_backfills_and_progress_match_their_schemas() -> None:
    stored = StoredJob(config=triggers(), desired_state="running", updated_at="2026-01-01T00:00Z")
    valid("webhook-jobs", stored.to_record())
    valid("webhook-backfills", backfill_request("j1", "r1", 5.0))
    progress = BackfillProgress("r1", "done", [0, 1], 2, 7, 9.0)
    valid("webhook-backfill-progress", progress_record("j1", progress))


def test_enrichment_answers_match_the_enrichment_schema() -> None:
    job = parse_job_config(
        {
            "id": "e1",
            "type": "user_enrichment",
            "label": "L",
            "audiences": ["vip"],
            "webhook_url": "https://hooks.example.com/in",
            "export_fields": ["a"],
        }
    )
    for _key, value in answer_records(job, [event()], b'{"score": 3}'):
        valid("webhook_enrichment", value)


def test_a_record_that_breaks_a_schema_is_caught() -> None:
    """The check itself can fail: a queue record without its user is refused."""
    with pytest.raises(AssertionError, match="user"):
        valid("webhook-queue-JOB_ID", {"event_id": "e", "job_id": "j"})
