"""Enrichment answers: what cannot be published becomes UnusableAnswer, never a retry loop."""

from __future__ import annotations

import pytest

from app.domain.enrichment import (
    MAX_STREAM_RECORD_BYTES,
    UnusableAnswer,
    answer_records,
)
from app.domain.jobs import parse_job_config
from app.domain.queue_record import QueuedEvent

JOB = parse_job_config(
    {
        "id": "e1",
        "type": "user_enrichment",
        "label": "L",
        "audiences": ["vip"],
        "webhook_url": "https://hooks.example.com/e",
        "export_fields": ["email"],
    }
)


def event(user: str = "u1") -> QueuedEvent:
    return QueuedEvent("ev", user, {"email": "a@b"}, {"email": "a@b"}, [], None, 0)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("depth", [255, 300, 1000])
def test_deeply_nested_answer_is_unusable(depth: int) -> None:
    with pytest.raises(UnusableAnswer, match=r"re-encoded|not JSON"):
        answer_records(JOB, [event()], nested(depth))


def test_answer_making_an_oversize_record_is_unusable() -> None:
    big = b'"' + b"x" * (MAX_STREAM_RECORD_BYTES - 10) + b'"'
    with pytest.raises(UnusableAnswer, match="more than"):
        answer_records(JOB, [event()], big)


def test_ordinary_answer_becomes_one_record_per_user() -> None:
    [(key, value)] = answer_records(JOB, [event("u7")], b'{"score": 3}')
    assert key == b"u7" and b'"response":{"score":3}' in value
