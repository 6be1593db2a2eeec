"""Dead letters read back (never raising on what the topic holds) and turned into queue
records that delivery reads as the event they were."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.deadletter_replay import parse_dead_letter, parse_id, queue_record_of
from app.domain.deadletters import deadletter_value
from app.domain.queue_record import QueuedEvent


def test_a_delivery_dead_letter_replays_as_the_same_queued_event() -> None:
    event = QueuedEvent(
        event_id="e1",
        user_id="u1",
        data={"email": "a@b.c", "n": 1},
        by_fields={"email": "a@b.c"},
        segment_events=[{"id": "s", "slug": "vip", "event": "enter"}],
        time="2026-11-30T00:00:00Z",
        queued_at_ms=0,
    )
    doc = event.template_user() | {"event_id": event.event_id, "time": event.time}
    raw = deadletter_value(job_id="job1", reason="HTTP 404", event=doc, status=404)
    letter = parse_dead_letter(3, 42, 1_700_000_000_000, raw)
    assert (letter.id, letter.job_id, letter.status, letter.replayable) == (
        "3-42",
        "job1",
        404,
        True,
    )
    record = queue_record_of(letter)
    assert record is not None
    key, value = record
    assert key == b"u1"
    again = QueuedEvent.from_queue_record(value, 0)
    assert again == event


@pytest.mark.parametrize(
    "event",
    [None, "raw text", {"id": "u"}, {"id": 1, "event_id": "e", "segment_events": []}],
)
def test_dead_letters_without_a_whole_event_are_not_replayable(event: object) -> None:
    raw = deadletter_value(job_id="job1", reason="r", event=event)
    assert not parse_dead_letter(0, 0, 0, raw).replayable


def test_an_input_dead_letter_has_no_job_and_is_not_replayable() -> None:
    raw = deadletter_value(job_id=None, reason="not JSON", event="{")
    letter = parse_dead_letter(0, 1, 0, raw)
    assert letter.job_id is None and not letter.replayable


@given(st.binary(max_size=300) | st.none())
def test_reading_never_raises_on_whatever_the_topic_holds(raw: bytes | None) -> None:
    letter = parse_dead_letter(0, 0, 0, raw)
    orjson.dumps(letter.to_json_dict())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    max_leaves=20,
)
# Events that look like a queued event with any field of any type.
EVENTS = JSON | st.fixed_dictionaries(
    {},
    optional={
        "id": JSON,
        "event_id": JSON,
        "data": JSON,
        "by_fields": JSON,
        "segment_events": JSON,
        "time": JSON,
    },
)


@given(EVENTS)
def test_hostile_json_never_makes_a_broken_queue_record(doc: object) -> None:
    letter = parse_dead_letter(0, 0, 0, orjson.dumps({"job_id": "j", "event": doc}))
    record = queue_record_of(letter)
    if record is not None:
        QueuedEvent.from_queue_record(record[1], 0)


@pytest.mark.parametrize("text", ["", "1", "a-1", "1-", "-1", "1-2-3", "1--2"])
def test_malformed_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a dead-letter id"):
        parse_id(text)
