"""Webhook bodies (contract section 7): Lytics default, CloudEvents, batches, webhook ids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat

from app.domain.jobs import JobConfig, parse_job_config
from app.domain.payloads import (
    build_request_body,
    cloudevent_body,
    lytics_body,
    webhook_id,
)
from app.domain.queue_record import QueuedEvent, queue_value
from app.domain.records import UserRecord

QUEUED_AT_MS = 1_685_056_204_651  # 2023-05-25T23:10:04.651Z
SEGMENT_EVENTS: list[dict[str, Any]] = [
    {"id": "efdcc4da", "event": "enter", "slug": "first_name_joe", "enter": "2023-05-25T23:09:59Z"}
]


def job(**overrides: Any) -> JobConfig:
    doc: dict[str, Any] = {
        "id": "f825f096718d07c65b9d6a94a4cc0c35",
        "type": "audience_triggers",
        "label": "Triggers",
        "audiences": ["vip"],
        "webhook_url": "https://hooks.example.com/in",
    }
    doc.update(overrides)
    return parse_job_config(doc)


def event(event_id: str = "ev1", time: str | None = None) -> QueuedEvent:
    return QueuedEvent(
        event_id=event_id,
        user_id="15761203643149024539",
        data={"first_name": "Joe", "last_name": "Flow", "email": "joe@example.com"},
        by_fields={"email": "joe@example.com"},
        segment_events=SEGMENT_EVENTS,
        time=time,
        queued_at_ms=QUEUED_AT_MS,
    )


def read_cloudevent(body: dict[str, Any]) -> Any:
    return JSONFormat().read(None, orjson.dumps(body))


def test_lytics_body_with_export_fields() -> None:
    j = job(export_fields=["first_name", "last_name", "not_on_profile"])
    body = lytics_body(j, event())
    assert set(body) == {"id", "data", "meta"}
    assert body["id"] == "15761203643149024539"
    assert body["data"] == {
        "first_name": "Joe",
        "last_name": "Flow",
        "segment_events": SEGMENT_EVENTS,
    }
    assert body["meta"] == {
        "object": "user",
        "subscription_id": j.id,
        "timestamp": "2023-05-25T23:10:04.651Z",
    }


def test_lytics_body_without_export_fields_sends_every_field() -> None:
    body = lytics_body(job(), event())
    assert body["data"] == {**event().data, "segment_events": SEGMENT_EVENTS}


def test_cloudevent_body_validates_with_defaults() -> None:
    j = job(cloudevents=True)
    ce = read_cloudevent(cloudevent_body(j, event("ev-42")))
    assert ce.get_id() == "ev-42"
    assert ce.get_source() == f"/work/{j.id}"
    assert ce.get_type() == "com.lytics.audience.user.event"
    assert ce.get_subject() == "15761203643149024539"
    assert ce.get_datacontenttype() == "application/json"
    assert ce.get_time() == datetime.fromisoformat("2023-05-25T23:10:04.651Z")
    assert ce.get_data() == {**event().data, "segment_events": SEGMENT_EVENTS}


def test_cloudevent_body_custom_source_type_and_record_time() -> None:
    j = job(cloudevents=True, cloudevents_source="/my/source", cloudevents_type="com.acme.x")
    ce = read_cloudevent(cloudevent_body(j, event(time="2023-05-10T23:27:53.568Z")))
    assert ce.get_source() == "/my/source"
    assert ce.get_type() == "com.acme.x"
    assert ce.get_time() == datetime.fromisoformat("2023-05-10T23:27:53.568Z")


@pytest.mark.parametrize(
    ("cloudevents", "content_type"),
    [(False, "application/json"), (True, "application/cloudevents+json")],
)
def test_build_request_body_single(cloudevents: bool, content_type: str) -> None:
    j = job(cloudevents=cloudevents)
    body, ctype = build_request_body(j, [event()])
    assert ctype == content_type
    make = cloudevent_body if cloudevents else lytics_body
    assert orjson.loads(body) == make(j, event())


@pytest.mark.parametrize(
    ("cloudevents", "content_type"),
    [(False, "application/json"), (True, "application/cloudevents-batch+json")],
)
def test_build_request_body_batch_is_array_in_order(cloudevents: bool, content_type: str) -> None:
    j = job(cloudevents=cloudevents, batch=True)
    events = [event("a"), event("b"), event("c")]
    body, ctype = build_request_body(j, events)
    assert ctype == content_type
    make = cloudevent_body if cloudevents else lytics_body
    assert orjson.loads(body) == [make(j, ev) for ev in events]


def test_unbatched_request_with_two_events_is_refused() -> None:
    with pytest.raises(ValueError):
        build_request_body(job(), [event("a"), event("b")])


def test_webhook_id() -> None:
    assert webhook_id([event("ev1")]) == "msg_ev1"
    batch = [event("a"), event("b")]
    assert webhook_id(batch) == webhook_id([event("a"), event("b")])
    assert webhook_id(batch) != webhook_id([event("a"), event("c")])


def test_queued_event_from_router_record() -> None:
    record = UserRecord(
        id="u1",
        data={"email": "u1@example.com"},
        segment_events=(),
        by_fields={"email": "u1@example.com"},
        timestamp="2023-05-10T23:27:53.568Z",
    )
    value = queue_value(record, "job1", "ev9", tuple(SEGMENT_EVENTS))
    ev = QueuedEvent.from_queue_record(value, QUEUED_AT_MS)
    assert ev == QueuedEvent(
        event_id="ev9",
        user_id="u1",
        data={"email": "u1@example.com"},
        by_fields={"email": "u1@example.com"},
        segment_events=SEGMENT_EVENTS,
        time="2023-05-10T23:27:53.568Z",
        queued_at_ms=QUEUED_AT_MS,
    )
