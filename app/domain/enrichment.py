"""User Enrichment (product doc "Webhook User Enrichment", contract section 7): the request
body per user, and pairing the endpoint's answer with the users it enriches.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.domain.jobs import JobConfig
from app.domain.queue_record import QueuedEvent, select_fields
from app.domain.templates import render

MAX_ANSWER_BYTES = 1024 * 1024
MAX_STREAM_RECORD_BYTES = 1_000_000  # under Kafka's default max.message.bytes


class UnusableAnswer(ValueError):
    """A 2xx answer that cannot be published: not JSON, too large, or the wrong length."""


def enrichment_item(job: JobConfig, event: QueuedEvent, job_json: dict[str, Any]) -> Any:
    """One user's part of the body: the template's output, or the export fields.

    Raises TemplateError when the template fails for this user.
    """
    if job.body_template:
        return render(job.body_template, event.template_user(job.export_fields), job_json)
    return select_fields(event.data, job.export_fields)


def enrichment_body(job: JobConfig, items: list[Any]) -> bytes:
    if job.batch:
        return orjson.dumps(items)
    if len(items) != 1:
        raise ValueError("an unbatched request carries exactly one user")
    return orjson.dumps(items[0])


def pair_answer(
    job: JobConfig, events: list[QueuedEvent], body: bytes
) -> list[tuple[QueuedEvent, Any]]:
    """Each user with its answer; batched answers must be arrays paired by position."""
    if len(body) > MAX_ANSWER_BYTES:
        raise UnusableAnswer(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UnusableAnswer(f"answer is not JSON ({exc})") from None
    if not job.batch:
        return [(events[0], answer)]
    if not isinstance(answer, list):
        raise UnusableAnswer(f"batched answer must be a JSON array, got {type(answer).__name__}")
    if len(answer) != len(events):
        raise UnusableAnswer(f"batched answer has {len(answer)} items for {len(events)} users")
    return list(zip(events, answer, strict=True))


def enrichment_record(event: QueuedEvent, answer: Any) -> tuple[bytes, bytes]:
    """(key, value) for the job's stream: the user's by_fields as origin, and the answer."""
    return event.user_id.encode(), orjson.dumps({"origin": event.by_fields, "response": answer})


def answer_records(
    job: JobConfig, events: list[QueuedEvent], body: bytes
) -> list[tuple[bytes, bytes]]:
    """The stream records of an answer, each checked to serialise and to fit a Kafka record;
    raises UnusableAnswer naming what is wrong (e.g. nested past orjson's depth limit)."""
    out = []
    for event, answer in pair_answer(job, events, body):
        try:
            key, value = enrichment_record(event, answer)
        except (orjson.JSONEncodeError, TypeError, RecursionError) as exc:
            raise UnusableAnswer(f"answer cannot be re-encoded ({exc})") from None
        if len(value) > MAX_STREAM_RECORD_BYTES:
            raise UnusableAnswer(
                f"the stream record for user {event.user_id[:100]} would be {len(value)} bytes, "
                f"more than {MAX_STREAM_RECORD_BYTES}"
            )
        out.append((key, value))
    return out
