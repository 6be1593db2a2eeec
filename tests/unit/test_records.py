"""Input records of `audience-events` (contract section 4)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.domain.errors import InvalidRecord
from app.domain.records import parse_record

EXAMPLE: dict[str, Any] = {
    "id": "7076027172059065053",
    "data": {"email": "beth@example.com", "first_name": "Beth"},
    "segment_events": [
        {
            "id": "42976a269a5e6b9d06c681b1c27292df",
            "slug": "emailzz5",
            "event": "enter",
            "enter": "2020-10-14T13:27:33.916374949-07:00",
        }
    ],
    "by_fields": {"email": "beth@example.com", "user_id": "u-1"},
    "timestamp": "2023-05-25T23:09:59.872199615Z",
}


def with_(**overrides: Any) -> bytes:
    return orjson.dumps({**EXAMPLE, **overrides})


def without(key: str) -> bytes:
    return orjson.dumps({k: v for k, v in EXAMPLE.items() if k != key})


def test_contract_example_is_accepted() -> None:
    record = parse_record(orjson.dumps(EXAMPLE))
    assert record.id == "7076027172059065053"
    assert record.data["first_name"] == "Beth"
    assert [(e.slug, e.event) for e in record.segment_events] == [("emailzz5", "enter")]
    assert record.segment_events[0].raw == EXAMPLE["segment_events"][0]
    assert record.by_fields == EXAMPLE["by_fields"]
    assert record.timestamp == "2023-05-25T23:09:59.872199615Z"


def test_only_id_and_data_are_required() -> None:
    record = parse_record(b'{"id": "u1", "data": {}}')
    assert record.segment_events == ()
    assert record.by_fields == {}
    assert record.timestamp is None


def test_integer_id_is_accepted_as_string() -> None:
    assert parse_record(with_(id=7076027172059065053)).id == "7076027172059065053"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json {", "value"),
        (b"\xff\xfe", "value"),
        (b"[1, 2]", "value"),
        (without("id"), "id"),
        (with_(id=""), "id"),
        (with_(id=True), "id"),
        (without("data"), "data"),
        (with_(data=["a"]), "data"),
        (with_(segment_events={"slug": "a"}), "segment_events"),
        (with_(segment_events=[{"slug": "a", "event": "maybe"}]), "segment_events[0].event"),
        (with_(segment_events=[{"event": "enter"}]), "segment_events[0].slug"),
        (with_(by_fields=["email"]), "by_fields"),
        (None, "value"),
    ],
)
def test_invalid_record_names_the_field(raw: bytes | None, field: str) -> None:
    with pytest.raises(InvalidRecord) as exc:
        parse_record(raw)
    assert exc.value.reason.startswith(f"{field}:")
