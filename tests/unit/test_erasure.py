"""Erasing a user: a tombstone on the input topic queues one exit marked deleted per job
that sends exits and audience the user was in, removes the state, names the user only by a
keyed erasure id in the job logs, and keeps the user's dead letters from being replayed."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat

from app.domain.baselines import marker_key
from app.domain.deadletter_replay import parse_dead_letter, queue_record_of
from app.domain.deadletters import deadletter_value
from app.domain.erasure import (
    ERASED_REASON,
    NO_KEY_ID,
    Erasure,
    ErasureIds,
    dead_letter_user,
    erasure_record,
    log_entries,
    replay_refusal,
)
from app.domain.errors import ConfigError
from app.domain.jobs import JobConfig, parse_job_config
from app.domain.payloads import build_request_body
from app.domain.queue_record import QueuedEvent
from app.domain.record_routing import MAX_ID_CHARS, RecordPlan, Source, plan_record
from app.domain.secrets import SecretBox, generate_key
from app.usecases.users import check_ids

DL = "dead"
CHANGELOG = "changelog"
NOW = "2026-12-07T10:00:00.000Z"
USER = "alice@example.com"


def triggers(job_id: str, audiences: list[str], **overrides: Any) -> JobConfig:
    doc: dict[str, Any] = {
        "id": job_id,
        "type": "audience_triggers",
        "label": "L",
        "audiences": audiences,
        "webhook_url": "https://hooks.example.com/in",
    }
    doc.update(overrides)
    return parse_job_config(doc)


def enrichment(job_id: str, audiences: list[str]) -> JobConfig:
    return parse_job_config(
        {
            "id": job_id,
            "type": "user_enrichment",
            "label": "L",
            "audiences": audiences,
            "webhook_url": "https://hooks.example.com/e",
            "export_fields": ["email"],
        }
    )


JOBS = {
    "exits": triggers("exits", ["gold", "vip", "never"]),
    "enters": triggers("enters", ["vip"], trigger_events="enter"),
    "only-exits": triggers("only-exits", ["gold"], trigger_events="exit"),
    "enrich": enrichment("enrich", ["vip"]),
    "other": triggers("other", ["never"]),
}


def record(user: str = USER, events: list[dict[str, Any]] | None = None, **data: Any) -> bytes:
    return orjson.dumps({"id": user, "data": data, "segment_events": events or []})


def enter(slug: str, segment_id: str) -> dict[str, Any]:
    return {"id": segment_id, "slug": slug, "event": "enter"}


def apply(store: dict[bytes, bytes], plan: RecordPlan) -> None:
    """What the router does with a plan."""
    plan.apply_to(store)


def member_store(user: str = USER) -> dict[bytes, bytes]:
    """The user entered vip, then gold (state order differs from the `exits` job's order)."""
    store: dict[bytes, bytes] = {}
    raw = record(user, [enter("vip", "seg-vip"), enter("gold", "seg-gold")], email="a@b.c")
    apply(
        store, plan_record(raw, user.encode(), Source("in", 1, 10), store.get, JOBS, DL, CHANGELOG)
    )
    assert user.encode() in store
    return store


def erase(
    store: dict[bytes, bytes], key: bytes | None = USER.encode(), offset: int = 20
) -> RecordPlan:
    return plan_record(None, key, Source("in", 1, offset), store.get, JOBS, DL, CHANGELOG, NOW)


def queued(plan: RecordPlan, job: str) -> list[QueuedEvent]:
    topic = JOBS[job].queue_topic
    return [
        QueuedEvent.from_queue_record(v, 0) for t, _k, v, _p in plan.records if t == topic and v
    ]


def changelog(plan: RecordPlan) -> list[tuple[bytes | None, bytes | None, int | None]]:
    return [(k, v, p) for t, k, v, p in plan.records if t == CHANGELOG]


def the_erasure(plan: RecordPlan) -> Erasure:
    assert plan.erasure is not None and not plan.dead_lettered
    return plan.erasure


# -- what a tombstone queues --------------------------------------------------------------


def test_member_of_two_audiences_gets_one_deleted_exit_per_audience_in_job_order() -> None:
    plan = erase(member_store())
    exits = queued(plan, "exits")
    assert [ev.segment_events[0]["slug"] for ev in exits] == ["gold", "vip"]
    for ev, segment_id in zip(exits, ["seg-gold", "seg-vip"], strict=True):
        assert ev.reason == ERASED_REASON
        assert ev.user_id == USER
        assert ev.data == {} and ev.by_fields == {}
        [seg] = ev.segment_events
        assert seg["event"] == "exit" and seg["id"] == segment_id
        assert seg["reason"] == ERASED_REASON and seg["exit"] == NOW
    assert len({ev.event_id for ev in exits}) == 2
    assert all(k == USER.encode() for t, k, _v, _p in plan.records if t != CHANGELOG)


def test_exit_event_ids_are_stable_per_tombstone_offset() -> None:
    store = member_store()
    first = [ev.event_id for ev in queued(erase(store, offset=20), "exits")]
    again = [ev.event_id for ev in queued(erase(store, offset=20), "exits")]
    other = [ev.event_id for ev in queued(erase(store, offset=21), "exits")]
    assert first == again
    assert not set(first) & set(other)
    erasure = the_erasure(erase(store, offset=20))
    [exits] = [j for j in erasure.jobs if j.job_id == "exits"]
    assert list(exits.event_ids) == first and exits.audiences == ("gold", "vip")


def test_a_job_with_exit_only_triggers_gets_its_exit() -> None:
    [ev] = queued(erase(member_store()), "only-exits")
    assert ev.reason == ERASED_REASON and ev.segment_events[0]["slug"] == "gold"


def test_enter_only_job_gets_nothing_but_is_listed_without_event_ids() -> None:
    plan = erase(member_store())
    assert queued(plan, "enters") == []
    [item] = [j for j in the_erasure(plan).jobs if j.job_id == "enters"]
    assert item.audiences == ("vip",) and item.event_ids == ()


def test_enrichment_job_gets_nothing_but_is_listed() -> None:
    plan = erase(member_store())
    assert queued(plan, "enrich") == []
    [item] = [j for j in the_erasure(plan).jobs if j.job_id == "enrich"]
    assert item.event_ids == ()


def test_job_whose_audiences_never_held_the_user_is_not_affected() -> None:
    plan = erase(member_store())
    erasure = the_erasure(plan)
    assert [j.job_id for j in erasure.jobs] == ["exits", "enters", "only-exits", "enrich"]
    assert queued(plan, "other") == []
    assert erasure.user_id == USER and erasure.source == ("in", 1, 20) and erasure.known


# -- the state ----------------------------------------------------------------------------


def test_known_user_gets_a_changelog_tombstone_on_the_input_partition() -> None:
    store = member_store()
    plan = erase(store)
    assert changelog(plan) == [(USER.encode(), None, 1)]
    assert plan.state_key == USER.encode() and plan.new_state is None
    apply(store, plan)
    assert store == {}


def test_user_with_a_state_but_no_audiences_is_known_and_gets_only_the_tombstone() -> None:
    store: dict[bytes, bytes] = {}
    raw = record(USER, [], email="a@b.c")
    apply(store, plan_record(raw, b"k", Source("in", 0, 0), store.get, JOBS, DL, CHANGELOG))
    assert USER.encode() in store
    plan = erase(store)
    assert plan.records == [(CHANGELOG, USER.encode(), None, 1)]
    assert the_erasure(plan).known and the_erasure(plan).jobs == ()


@pytest.mark.parametrize("unreadable", [b"not json", b"[]", b'{"audiences": 5}'])
def test_an_unreadable_stored_state_is_removed_all_the_same(unreadable: bytes) -> None:
    store = {USER.encode(): unreadable}
    plan = erase(store)
    assert the_erasure(plan).known is True and the_erasure(plan).jobs == ()
    assert changelog(plan) == [(USER.encode(), None, 1)]
    apply(store, plan)
    assert store == {}


def test_unknown_user_writes_nothing_and_is_not_known() -> None:
    store = member_store("bob")
    plan = erase(store)
    erasure = the_erasure(plan)
    assert plan.records == []
    assert not erasure.known and erasure.jobs == ()
    apply(store, plan)
    assert b"bob" in store


# -- bad tombstone keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (None, "without a key"),
        (b"\xff", "not UTF-8"),
        (b"", "empty"),
        (b"a\x00b", "NUL"),
        (b"x" * (MAX_ID_CHARS + 1), f"{MAX_ID_CHARS + 1} characters, more than {MAX_ID_CHARS}"),
    ],
)
def test_bad_tombstone_key_is_dead_lettered_naming_the_problem(
    key: bytes | None, problem: str
) -> None:
    store = member_store()
    plan = erase(store, key=key)
    assert plan.dead_lettered and plan.erasure is None and plan.new_state is None
    [(topic, dl_key, value, _part)] = plan.records
    assert topic == DL and dl_key == key and value is not None
    letter = orjson.loads(value)
    assert problem in letter["reason"] and "tombstone" in letter["reason"]
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("in", 1, 20)


def test_longest_allowed_tombstone_key_erases() -> None:
    user = "x" * MAX_ID_CHARS
    plan = erase(member_store(user), key=user.encode())
    assert the_erasure(plan).known and changelog(plan) == [(user.encode(), None, 1)]


def test_tombstone_cannot_delete_a_baseline_marker() -> None:
    store = member_store()
    marker = marker_key("exits")
    assert marker == b"\x00baseline:exits"
    store[marker] = b'{"job_id":"exits","tag":"t"}'
    plan = erase(store, key=marker)
    assert plan.dead_lettered and changelog(plan) == []
    apply(store, plan)
    assert marker in store


# -- erasure ids --------------------------------------------------------------------------


def test_erasure_id_is_keyed_stable_and_hides_the_user() -> None:
    box = SecretBox(generate_key())
    ids = ErasureIds.from_box(box, "app")
    eid = ids.erasure_id(USER)
    assert re.fullmatch(r"[0-9a-f]{32}", eid)
    assert eid == ErasureIds.from_box(box, "app").erasure_id(USER)
    assert eid != ids.erasure_id("bob@example.com")
    assert eid != ErasureIds.from_box(SecretBox(generate_key()), "app").erasure_id(USER)
    assert USER not in eid
    assert ids.record_key(USER) == f"{box.current.key_id}:{eid}".encode()
    assert USER.encode() not in ids.record_key(USER)


def test_without_a_secret_key_the_key_id_is_none_and_the_app_id_keys_it() -> None:
    ids = ErasureIds.from_box(None, "app")
    assert ids.current.key_id == NO_KEY_ID == "none"
    assert ids.record_key(USER).startswith(b"none:")
    assert ids.erasure_id(USER) == ErasureIds.from_box(None, "app").erasure_id(USER)
    assert ids.erasure_id(USER) != ErasureIds.from_box(None, "other-app").erasure_id(USER)
    with_key = ErasureIds.from_box(SecretBox(generate_key()), "app")
    assert ids.erasure_id(USER) != with_key.erasure_id(USER)


def test_record_keys_cover_the_current_and_previous_keys() -> None:
    old, new = generate_key(), generate_key()
    ids = ErasureIds.from_box(SecretBox(new, [old]), "app")
    old_ids = ErasureIds.from_box(SecretBox(old), "app")
    keys = ids.record_keys(USER)
    assert list(keys) == [ids.current.key_id, old_ids.current.key_id]
    assert keys[ids.current.key_id] == ids.record_key(USER)
    assert keys[old_ids.current.key_id] == old_ids.record_key(USER)
    assert ids.record_key(USER) != old_ids.record_key(USER)


def test_erasure_record_names_the_erasure_id_never_the_user() -> None:
    ids = ErasureIds.from_box(SecretBox(generate_key()), "app")
    raw = erasure_record(the_erasure(erase(member_store())), ids, 5.0, NOW)
    doc = orjson.loads(raw)
    assert doc["erasure_id"] == ids.erasure_id(USER) and doc["key_id"] == ids.current.key_id
    assert doc["tombstone"] == {"topic": "in", "partition": 1, "offset": 20}
    assert doc["jobs"] == ["exits", "enters", "only-exits", "enrich"]
    assert USER.encode() not in raw and b"alice" not in raw


# -- job logs -----------------------------------------------------------------------------


def test_one_erased_entry_per_affected_job_naming_only_the_erasure_id() -> None:
    ids = ErasureIds.from_box(SecretBox(generate_key()), "app")
    erasure = the_erasure(erase(member_store()))
    entries = log_entries(erasure, JOBS, ids, "w1", 5.0)
    assert [e.job_id for e in entries] == ["exits", "enters", "only-exits", "enrich"]
    eid = ids.erasure_id(USER)
    for item in entries:
        assert item.kind == "erased" and item.worker_id == "w1"
        assert eid in item.message and item.details["erasure_id"] == eid
        assert item.details["key_id"] == ids.current.key_id
        raw = item.to_bytes()
        assert USER.encode() not in raw and b"alice" not in raw
    by_job = {e.job_id: e for e in entries}
    assert by_job["exits"].details["events"] == 2
    assert by_job["exits"].details["audiences"] == ["gold", "vip"]
    assert by_job["exits"].details["event_ids"] == list(erasure.jobs[0].event_ids)
    assert by_job["enters"].details["events"] == 0
    messages = {by_job[j].message.rpartition(": ")[2] for j in ("exits", "enters", "enrich")}
    assert len(messages) == 3
    assert "2 exit event(s) queued" in by_job["exits"].message
    assert "does not send exits" in by_job["enters"].message
    assert "enrichment" in by_job["enrich"].message


def test_unknown_user_makes_no_log_entries() -> None:
    ids = ErasureIds.from_box(None, "app")
    assert log_entries(the_erasure(erase({})), JOBS, ids, "w1", 5.0) == []


# -- webhook bodies -----------------------------------------------------------------------


def erased_exit(job: str = "exits") -> QueuedEvent:
    return queued(erase(member_store()), job)[0]


def normal_event(job: JobConfig) -> QueuedEvent:
    store: dict[bytes, bytes] = {}
    raw = record(USER, [enter("gold", "seg-gold")], email="a@b.c")
    plan = plan_record(raw, b"k", Source("in", 0, 0), store.get, {job.id: job}, DL, CHANGELOG)
    [value] = [v for t, _k, v, _p in plan.records if t == job.queue_topic and v]
    return QueuedEvent.from_queue_record(value, 0)


def test_lytics_body_of_an_erasure_exit_says_deleted() -> None:
    job = JOBS["exits"]
    body = orjson.loads(build_request_body(job, [erased_exit()])[0])
    assert body["meta"]["reason"] == "deleted"
    assert body["id"] == USER
    assert body["data"] == {"segment_events": erased_exit().segment_events}


def test_cloudevent_of_an_erasure_exit_has_a_valid_reason_extension() -> None:
    job = triggers("exits", ["gold", "vip", "never"], cloudevents=True)
    raw, _ctype = build_request_body(job, [erased_exit()])
    body = orjson.loads(raw)
    assert body["reason"] == "deleted"
    # CloudEvents extension attribute names: lower-case a-z and 0-9 only (20 at most)
    assert re.fullmatch(r"[a-z0-9]{1,20}", "reason")
    ce = JSONFormat().read(None, raw)
    assert ce.get_extension("reason") == "deleted"
    assert ce.get_subject() == USER


def test_batched_bodies_mark_only_the_erasure_exit() -> None:
    job = triggers("exits", ["gold", "vip", "never"], cloudevents=True, batch=True)
    body = orjson.loads(build_request_body(job, [normal_event(job), erased_exit()])[0])
    assert ["reason" in item for item in body] == [False, True]


@pytest.mark.parametrize("cloudevents", [False, True])
def test_normal_events_carry_no_reason(cloudevents: bool) -> None:
    job = triggers("exits", ["gold"], cloudevents=cloudevents)
    event = normal_event(job)
    assert event.reason is None
    body = orjson.loads(build_request_body(job, [event])[0])
    assert "reason" not in body
    assert "reason" not in body.get("meta", {})


# -- dead letters of erased users ---------------------------------------------------------


def erasures_of(ids: ErasureIds, *users: str) -> dict[str, dict[str, Any]]:
    """The erasures topic's view after erasing `users` (as `parse_erasures` returns it)."""
    out = {}
    for i, user in enumerate(users):
        erasure = Erasure(user, ("in", 0, i), True, ())
        out[ids.record_key(user).decode()] = orjson.loads(erasure_record(erasure, ids, 1.0, NOW))
    return out


def letter_event(user: Any = USER, data: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": user,
        "data": {"email": "a@b.c"} if data is None else data,
        "by_fields": {},
        "segment_events": [{"id": "s", "slug": "vip", "event": "enter"}],
        "event_id": "e1",
        "time": None,
        **extra,
    }


def test_event_of_an_erased_user_is_refused_naming_the_erasure_id() -> None:
    ids = ErasureIds.from_box(SecretBox(generate_key()), "app")
    why = replay_refusal(letter_event(), erasures_of(ids, USER), ids)
    assert why is not None and "erased" in why and ids.erasure_id(USER) in why
    assert USER not in why


def test_event_of_another_user_passes() -> None:
    ids = ErasureIds.from_box(SecretBox(generate_key()), "app")
    assert replay_refusal(letter_event("bob"), erasures_of(ids, USER), ids) is None


def test_erasure_under_a_previous_key_still_refuses() -> None:
    old, new = generate_key(), generate_key()
    old_ids = ErasureIds.from_box(SecretBox(old), "app")
    ids = ErasureIds.from_box(SecretBox(new, [old]), "app")
    why = replay_refusal(letter_event(), erasures_of(old_ids, USER), ids)
    assert why is not None and old_ids.erasure_id(USER) in why


def test_erasures_under_an_unknown_key_refuse_everything_naming_the_key_id() -> None:
    other = ErasureIds.from_box(SecretBox(generate_key()), "app")
    ids = ErasureIds.from_box(SecretBox(generate_key()), "app")
    erasures = erasures_of(other, "someone")
    for event in [letter_event(), letter_event("bob"), "raw text", None]:
        why = replay_refusal(event, erasures, ids)
        assert why is not None and other.current.key_id in why


def test_an_erasures_own_exit_may_be_replayed() -> None:
    ids = ErasureIds.from_box(None, "app")
    own_exit = letter_event(data={}, reason=ERASED_REASON)
    assert replay_refusal(own_exit, erasures_of(ids, USER), ids) is None
    with_data = letter_event(reason=ERASED_REASON)
    assert replay_refusal(with_data, erasures_of(ids, USER), ids) is not None
    with_fields = letter_event(data={}, by_fields={"email": USER}, reason=ERASED_REASON)
    assert replay_refusal(with_fields, erasures_of(ids, USER), ids) is not None


def test_no_erasures_refuses_nothing() -> None:
    ids = ErasureIds.from_box(None, "app")
    assert replay_refusal(letter_event(), {}, ids) is None


def test_int_user_ids_are_matched_like_their_text() -> None:
    ids = ErasureIds.from_box(None, "app")
    assert replay_refusal(letter_event(12345), erasures_of(ids, "12345"), ids) is not None


@pytest.mark.parametrize(
    ("event", "user"),
    [
        ({"id": "u1"}, "u1"),
        ({"id": 42}, "42"),
        ({"id": True}, None),
        ({"id": 1.5}, None),
        ({}, None),
        ("text", None),
        (None, None),
        ([{"id": "u1"}], None),
    ],
)
def test_dead_letter_user(event: Any, user: str | None) -> None:
    assert dead_letter_user(event) == user


def test_replaying_an_erasure_exit_keeps_it_marked_deleted() -> None:
    exit_event = erased_exit()
    doc = exit_event.template_user() | {
        "event_id": exit_event.event_id,
        "time": exit_event.time,
        "reason": exit_event.reason,
    }
    raw = deadletter_value(job_id="exits", reason="HTTP 400", event=doc, status=400)
    found = queue_record_of(parse_dead_letter(0, 7, 0, raw))
    assert found is not None
    key, value = found
    assert key == USER.encode()
    assert QueuedEvent.from_queue_record(value, 0) == exit_event


def test_replaying_a_normal_event_adds_no_reason() -> None:
    raw = deadletter_value(job_id="exits", reason="HTTP 400", event=letter_event())
    found = queue_record_of(parse_dead_letter(0, 7, 0, raw))
    assert found is not None and "reason" not in orjson.loads(found[1])


# -- `webhooks users forget` ids ----------------------------------------------------------


def test_check_ids_names_every_bad_id() -> None:
    long_id = "y" * (MAX_ID_CHARS + 1)
    with pytest.raises(ConfigError) as caught:
        check_ids(["ok", "", "a\x00b", long_id, "fine"])
    text = str(caught.value)
    assert caught.value.problem_count == 3
    assert "empty" in text and "NUL" in text
    assert f"{MAX_ID_CHARS + 1} characters" in text
    assert "'ok'" not in text and "'fine'" not in text


def test_check_ids_refuses_an_empty_list() -> None:
    with pytest.raises(ConfigError, match="at least one user id"):
        check_ids([])


def test_check_ids_drops_repeats_keeping_order() -> None:
    assert check_ids(["b", "a", "b", USER, "a"]) == ["b", "a", USER]
