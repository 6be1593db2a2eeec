"""Delivery's two Kafka outputs besides the webhook: dead letters and enrichment answers.

Both are written with `publish_until_acked`: every record handed to the producer and its
ack awaited; on any failure the whole set is written again after a second, until the
broker has it (a queue offset is committed only after, so nothing is lost; a repeat is a
recognisable duplicate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from app.domain.deadletters import deadletter_value
from app.domain.queue_record import QueuedEvent

log = logging.getLogger(__name__)

RETRY_S = 1.0


async def publish_until_acked(
    producer: AIOKafkaProducer,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes]],
    what: str,
) -> None:
    """Write (key, value) `records` to `topic`; return once the broker acknowledged all."""
    while True:
        try:
            acks = [await producer.send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*acks)
            return
        except Exception as exc:
            log.error("%s not written (%s); retrying in %.0f s", what, exc, RETRY_S)
            await asyncio.sleep(RETRY_S)


def deadletter_records(
    job_id: str,
    events: list[QueuedEvent],
    reason: str,
    status: int | None = None,
    raw: bytes | None = None,
) -> list[tuple[bytes | None, bytes]]:
    """One dead letter per event (key: job id); for a queue record that could not be read,
    one holding its raw text."""
    # The whole queued event (its id and time too), so `deadletters replay` can queue it again.
    docs: list[Any] = [
        e.template_user()
        | {"event_id": e.event_id, "time": e.time}
        | ({"reason": e.reason} if e.reason else {})
        for e in events
    ]
    if raw is not None:
        docs = [raw.decode("utf-8", errors="replace")]
    key = job_id.encode()
    return [
        (key, deadletter_value(job_id=job_id, reason=reason, event=doc, status=status))
        for doc in docs
    ]
