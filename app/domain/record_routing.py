"""What one input record causes: queue records, a dead letter, the user's new state. Pure.

`plan_record` never raises: a record it cannot parse, serialise or route, or whose output
would pass a documented limit, becomes one bounded dead letter with the reason, and the
user's previous state is kept. So one hostile record can never stop the router, and every
record the router writes fits under the broker's default message size.

Limits (README, "Security and limits"):
- input record value: at most `MAX_RECORD_BYTES`;
- user id: at most `MAX_ID_CHARS` characters;
- audiences a user is in at once: at most `MAX_AUDIENCES_PER_USER`;
- a user's stored state: at most `MAX_STATE_BYTES`;
- every record written (queue record, dead letter): at most `MAX_OUTPUT_BYTES`.
A dead letter of an oversize or unserialisable record carries a truncated copy: its first
`EXCERPT_BYTES`, its size and its sha256.

A tombstone (no value; key = user id) deletes the user (`app/domain/erasure.py`): exits
for the jobs that send them, and the state removed by a changelog tombstone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.deadletters import deadletter_value, raw_event
from app.domain.erasure import Erasure, plan_erasure, tombstone_user_id
from app.domain.errors import InvalidRecord
from app.domain.jobs import JobConfig
from app.domain.queue_record import queue_value
from app.domain.records import parse_record
from app.domain.routing import UserState, route
from app.domain.trace_context import TraceContext

MAX_RECORD_BYTES = 1_000_000
MAX_ID_CHARS = 1024
MAX_AUDIENCES_PER_USER = 10_000
MAX_STATE_BYTES = 512 * 1024
MAX_OUTPUT_BYTES = 1_000_000  # under Kafka's default max.message.bytes (1 048 588)
EXCERPT_BYTES = 4096

# topic, key, value (None: a tombstone), partition
OutRecord = tuple[str, bytes | None, bytes | None, int | None]


@dataclass(frozen=True, slots=True)
class Source:
    """Where an input record came from, and the trace its webhooks continue (only when
    traces are on: `app/transport/tracing.py`)."""

    topic: str
    partition: int
    offset: int
    trace: TraceContext | None = None


@dataclass(slots=True)
class RecordPlan:
    """The records to write for one input record, and the user's state to keep."""

    records: list[OutRecord] = field(default_factory=list)
    state_key: bytes | None = None
    new_state: bytes | None = None  # None: keep what is stored
    dead_lettered: bool = False
    erasure: Erasure | None = None  # a tombstone: the user is deleted, its state removed

    def apply_to(self, data: dict[bytes, bytes]) -> None:
        """Change a partition's state map as this plan says (the router's one way to)."""
        if self.dead_lettered or self.state_key is None:
            return
        if self.erasure is not None:
            data.pop(self.state_key, None)
        elif self.new_state is not None:
            data[self.state_key] = self.new_state


def event_id(topic: str, partition: int, offset: int, job_id: str) -> str:
    """Stable across redeliveries of the same input offset, so duplicates are recognisable."""
    raw = f"{topic}/{partition}/{offset}/{job_id}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def truncated_copy(raw: bytes | None) -> dict[str, Any] | None:
    """What a dead letter keeps of a record too large or too odd to keep whole."""
    if raw is None:
        return None
    return {
        "truncated": True,
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "head": raw[:EXCERPT_BYTES].decode("utf-8", errors="replace"),
    }


def input_deadletter(
    raw: bytes | None, source: Source, reason: str, job_id: str | None = None
) -> bytes:
    """A dead letter for an input record, under `MAX_OUTPUT_BYTES` whatever the record."""
    where = (source.topic, source.partition, source.offset)
    reason = reason[:2000]
    if raw is not None and len(raw) <= MAX_OUTPUT_BYTES // 2:
        value = deadletter_value(job_id=job_id, reason=reason, event=raw_event(raw), source=where)
        if len(value) <= MAX_OUTPUT_BYTES:
            return value
    return deadletter_value(job_id=job_id, reason=reason, event=truncated_copy(raw), source=where)


def plan_record(
    raw: bytes | None,
    key: bytes | None,
    source: Source,
    stored: Callable[[bytes], bytes | None],
    jobs: Mapping[str, JobConfig],
    deadletter_topic: str,
    changelog_topic: str,
    now: str = "",
) -> RecordPlan:
    """Everything one input record causes; never raises (see the module docstring).

    `stored(user key)` is the user's state as stored (None for a user not seen yet);
    `jobs` maps job id to config (built once per batch, not per record); `now` (RFC 3339)
    is the time of the exits a tombstone causes."""
    try:
        if raw is None:
            return _plan_tombstone(key, source, stored, jobs, changelog_topic, now)
        return _plan(raw, source, stored, jobs, changelog_topic)
    except InvalidRecord as exc:
        reason = f"invalid input record: {exc.reason}"
    except RecursionError:
        reason = "invalid input record: nested too deeply"
    except Exception as exc:  # anything else a hostile record can make the code raise
        reason = f"input record could not be routed: {type(exc).__name__}: {exc}"
    value = input_deadletter(raw, source, reason)
    return RecordPlan(records=[(deadletter_topic, key, value, None)], dead_lettered=True)


def _plan_tombstone(
    key: bytes | None,
    source: Source,
    lookup: Callable[[bytes], bytes | None],
    jobs: Mapping[str, JobConfig],
    changelog_topic: str,
    now: str,
) -> RecordPlan:
    user_id = tombstone_user_id(key, MAX_ID_CHARS)
    state_key = user_id.encode()
    stored = lookup(state_key)
    where = (source.topic, source.partition, source.offset)
    try:
        state = UserState.from_bytes(stored)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        state = None  # unreadable: no exits can be told, but the state is removed all the same
    known = stored is not None
    queued, erasure = plan_erasure(
        user_id, state, jobs.values(), where, now, known=known, trace=source.trace
    )
    plan = RecordPlan(state_key=state_key, erasure=erasure)
    plan.records.extend((topic, state_key, value, None) for topic, value in queued)
    if stored is not None:
        # Co-partitioned with the input, acknowledged before the input offset is committed;
        # compaction then drops every earlier state record of the user.
        plan.records.append((changelog_topic, state_key, None, source.partition))
    return plan


def _plan(
    raw: bytes | None,
    source: Source,
    lookup: Callable[[bytes], bytes | None],
    jobs: Mapping[str, JobConfig],
    changelog_topic: str,
) -> RecordPlan:
    if raw is not None and len(raw) > MAX_RECORD_BYTES:
        raise InvalidRecord(f"value: {len(raw)} bytes, more than the {MAX_RECORD_BYTES} allowed")
    record = parse_record(raw)
    if len(record.id) > MAX_ID_CHARS:
        raise InvalidRecord(f"id: {len(record.id)} characters, more than {MAX_ID_CHARS}")
    state_key = record.id.encode()
    stored = lookup(state_key)
    state = UserState.from_bytes(stored)
    routed, new_state = route(record, state, jobs.values())
    if len(new_state.audiences) > MAX_AUDIENCES_PER_USER:
        raise InvalidRecord(
            f"segment_events: the user would be in {len(new_state.audiences)} audiences, "
            f"more than {MAX_AUDIENCES_PER_USER}; previous state kept"
        )
    if new_state.audiences:
        new_state.last = (source.partition, source.offset)
    plan = RecordPlan(state_key=state_key)
    for job_event in routed:
        job = jobs.get(job_event.job_id)
        if job is None:
            continue
        ev_id = event_id(source.topic, source.partition, source.offset, job.id)
        value = queue_value(record, job.id, ev_id, job_event.segment_events, trace=source.trace)
        if len(value) > MAX_OUTPUT_BYTES:
            raise InvalidRecord(
                f"the queue record for job {job.id} would be {len(value)} bytes, "
                f"more than {MAX_OUTPUT_BYTES}"
            )
        plan.records.append((job.queue_topic, state_key, value, None))
    raw_state = new_state.to_bytes()
    if len(raw_state) > MAX_STATE_BYTES:
        raise InvalidRecord(
            f"the user's state would be {len(raw_state)} bytes, more than {MAX_STATE_BYTES}; "
            "previous state kept"
        )
    if raw_state != stored:
        # Co-partitioned with the input; acknowledged before the input offset is committed.
        plan.records.append((changelog_topic, state_key, raw_state, source.partition))
        plan.new_state = raw_state
    return plan
