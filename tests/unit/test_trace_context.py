"""The W3C trace context carried from input records to webhook requests
(`app/domain/trace_context.py`): what is accepted, what is canonicalised, what is dropped,
and that no header value, however hostile, raises or travels on unchecked."""

from __future__ import annotations

import re

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.queue_record import QueuedEvent, queue_value
from app.domain.records import UserRecord
from app.domain.trace_context import MAX_TRACESTATE_CHARS, TraceContext

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
PARENT = f"00-{TRACE}-{SPAN}-01"
CANONICAL = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def test_a_valid_traceparent_is_kept_with_its_ids() -> None:
    got = TraceContext.parse(PARENT, "congo=t61rcWkgMzE")
    assert got == TraceContext(PARENT, "congo=t61rcWkgMzE")
    assert got.trace_id == TRACE and got.span_id == SPAN
    assert got.to_dict() == {"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"}
    assert TraceContext.parse(PARENT.encode()) == TraceContext(PARENT)
    assert TraceContext(PARENT).to_dict() == {"traceparent": PARENT}


def test_a_future_version_is_read_as_version_00() -> None:
    assert TraceContext.parse(f"cc-{TRACE}-{SPAN}-01-what-comes-next") == TraceContext(PARENT)


def test_surrounding_blanks_are_ignored() -> None:
    assert TraceContext.parse(f" {PARENT}\t") == TraceContext(PARENT)


def test_invalid_traceparents_are_ignored() -> None:
    for bad in [
        "",
        "00",
        PARENT.upper(),  # the spec allows lowercase hex only
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has no more fields
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}\n-{SPAN}-01",
        PARENT + "\n",
        b"\xff" + PARENT.encode(),  # not ASCII
        PARENT.encode() + b" " * 2000,  # longer than any header worth reading
        None,
        42,
    ]:
        assert TraceContext.parse(bad) is None, bad


def test_an_unacceptable_tracestate_is_dropped_and_the_parent_kept() -> None:
    for state in ["x" * (MAX_TRACESTATE_CHARS + 1), "a=\x00b", "a=é", b"\xff", 7]:
        assert TraceContext.parse(PARENT, state) == TraceContext(PARENT), state
    assert TraceContext.parse(PARENT, "x" * MAX_TRACESTATE_CHARS).tracestate  # type: ignore[union-attr]


def test_kafka_headers_names_are_case_blind_and_the_last_value_wins() -> None:
    other = f"00-{'1' * 32}-{'2' * 16}-00"
    headers = [
        ("traceparent", other.encode()),
        ("TraceParent", PARENT.encode()),
        ("tracestate", b"a=1"),
        ("content-type", b"application/json"),
    ]
    assert TraceContext.from_headers(headers) == TraceContext(PARENT, "a=1")
    assert TraceContext.from_headers([("tracestate", b"a=1")]) is None
    assert TraceContext.from_headers([("traceparent", None)]) is None
    assert TraceContext.from_headers(None) is None
    assert TraceContext.from_headers([]) is None


@settings(max_examples=300, deadline=None)
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from(["traceparent", "tracestate", "TRACEPARENT", "x"]) | st.text(),
            st.none() | st.binary(max_size=80) | st.just(PARENT.encode()),
        ),
        max_size=5,
    )
)
def test_any_headers_give_nothing_or_a_canonical_context(
    headers: list[tuple[str, bytes | None]],
) -> None:
    got = TraceContext.from_headers(headers)
    if got is not None:
        assert CANONICAL.fullmatch(got.traceparent)
        assert len(got.tracestate) <= MAX_TRACESTATE_CHARS
        assert TraceContext.parse(got.traceparent, got.tracestate) == got


def record() -> UserRecord:
    return UserRecord(
        id="u1", data={"email": "a@b"}, segment_events=(), by_fields={}, timestamp=None
    )


def test_the_queue_record_carries_the_context_to_delivery() -> None:
    traced = queue_value(record(), "j1", "e1", (), trace=TraceContext(PARENT, "a=1"))
    assert orjson.loads(traced)["traceparent"] == PARENT
    assert QueuedEvent.from_queue_record(traced, 1).trace == TraceContext(PARENT, "a=1")
    plain = queue_value(record(), "j1", "e1", ())
    assert "traceparent" not in orjson.loads(plain)
    assert QueuedEvent.from_queue_record(plain, 1).trace is None


def test_a_queue_record_with_a_bad_context_is_delivered_without_one() -> None:
    doc = orjson.loads(queue_value(record(), "j1", "e1", ()))
    for bad in ["junk", 5, None, ["x"], PARENT.upper()]:
        event = QueuedEvent.from_queue_record(orjson.dumps({**doc, "traceparent": bad}), 1)
        assert event.trace is None and event.user_id == "u1"
