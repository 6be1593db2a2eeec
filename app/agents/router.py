"""The router agent: input records -> per-job queues, invalid records -> dead letters.

Invariant 1 lives here. Events are taken with `noack_take` and acked only after every record
they caused (queue records, dead letters, state changelog) has been acknowledged by the
broker, so a committed input offset never covers an event that is not durably queued.
Errors never escape the loop: an exception in an agent would ack and skip the event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import orjson

from app.agents.deadletter import deadletter_value, raw_event
from app.domain.errors import InvalidRecord
from app.domain.records import UserRecord, parse_record
from app.domain.routing import UserState, route
from app.settings import Settings
from app.transport.registry import ConfigRegistry

log = logging.getLogger(__name__)

TAKE_MAX = 1000
TAKE_WITHIN_S = 0.02


def event_id(topic: str, partition: int, offset: int, job_id: str) -> str:
    """Stable across redeliveries of the same input offset, so duplicates are recognisable."""
    raw = f"{topic}/{partition}/{offset}/{job_id}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def queue_value(
    record: UserRecord, job_id: str, ev_id: str, events: tuple[dict[str, Any], ...]
) -> bytes:
    return orjson.dumps(
        {
            "event_id": ev_id,
            "job_id": job_id,
            "time": record.timestamp,
            "user": {
                "id": record.id,
                "data": record.data,
                "by_fields": record.by_fields,
                "segment_events": events,
            },
        }
    )


class Router:
    """Routes a batch of input events; owns nothing but references to the app's pieces."""

    def __init__(
        self, app: Any, settings: Settings, registry: ConfigRegistry, state_table: Any
    ) -> None:
        self.app = app
        self.registry = registry
        self.table = state_table
        self.settings = settings
        self.routed = 0
        self.dead_lettered = 0

    async def process(self, events: list[Any]) -> None:
        """Route `events`; return only when everything they produced is acknowledged.

        A failure (broker away, produce timeout) retries the whole batch: records already
        written are written again with the same event ids, which delivery recognises.
        """
        while True:
            try:
                acks = await self._route_batch(events)
                if acks:
                    await asyncio.gather(*acks)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # the broker will come back; never skip an event
                log.exception("routing a batch of %d failed; retrying in 1 s", len(events))
                await asyncio.sleep(1.0)

    async def _route_batch(self, events: list[Any]) -> list[Any]:
        # Sends are enqueued one after another (never concurrently) so records for the same
        # queue partition keep input order; only the broker acks are awaited together.
        send = self.app.producer.send
        jobs = [j.config for j in self.registry.jobs.values()]
        acks: list[Any] = []
        dl_topic = self.settings.deadletter_topic
        changelog = self.table.changelog_topic.get_topic_name()
        for event in events:
            message = event.message
            try:
                record = parse_record(event.value)
            except InvalidRecord as exc:
                self.dead_lettered += 1
                value = deadletter_value(
                    job_id=None,
                    reason=f"invalid input record: {exc.reason}",
                    event=raw_event(event.value),
                    source=(message.topic, message.partition, message.offset),
                )
                acks.append(await send(dl_topic, message.key, value, None, None, None))
                continue
            key = record.id.encode()
            stored = self.table.data.get(key)
            state = UserState.from_bytes(stored)
            routed, new_state = route(record, state, jobs)
            for job_event in routed:
                job = self.registry.jobs.get(job_event.job_id)
                if job is None:
                    continue
                ev_id = event_id(message.topic, message.partition, message.offset, job.config.id)
                value = queue_value(record, job.config.id, ev_id, job_event.segment_events)
                acks.append(await send(job.config.queue_topic, key, value, None, None, None))
                self.routed += 1
            raw_state = new_state.to_bytes()
            if raw_state != stored:
                # Same record Faust's own changelog write would make, but acknowledged
                # before the input offset is acked (Faust's send_soon is best effort).
                self.table.data[key] = raw_state
                acks.append(await send(changelog, key, raw_state, message.partition, None, None))
        return acks
