"""Dead-letter use cases: list a job's dead letters in a time range, replay chosen ones
into the job's queue (each once: a second replay of the same dead letter is refused unless
forced, so a double click cannot deliver an event twice; one of an erased user is refused
always, `app/domain/erasure.py`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from app.domain.deadletter_replay import DeadLetter, parse_dead_letter, parse_id, queue_record_of
from app.domain.erasure import parse_erasures, replay_refusal
from app.domain.errors import ConfigError, FieldProblem
from app.domain.job_log import entry
from app.settings import Settings
from app.topic_catalog import erasures_topic
from app.transport.job_log import read_job_log, read_keyed
from app.transport.kafka import producer, read_compacted
from app.usecases.errors import CommandFailed
from app.usecases.job_reads import get_job
from app.usecases.keys import erasure_ids

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


async def list_dead_letters(
    settings: Settings,
    job_id: str,
    since: float | None = None,
    until: float | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[DeadLetter]:
    """The job's dead letters written from `since` to `until` (unix seconds), oldest first;
    the latest `limit` of them."""
    await get_job(settings, job_id)
    letters = await _read(settings, job_id, since, until, limit)
    refused = dict(await erased_refusals(settings, letters))
    return [replace(d, refusal=refused[d.id]) if d.id in refused else d for d in letters]


async def _read(
    settings: Settings, job_id: str, since: float | None, until: float | None, limit: int
) -> list[DeadLetter]:
    limit = max(1, min(limit, MAX_LIMIT))
    out: list[DeadLetter] = []
    topic = settings.deadletter_topic
    async for record in read_keyed(settings, topic, job_id.encode(), since):
        if until is not None and record.timestamp / 1000 > until:
            break
        letter = parse_dead_letter(record.partition, record.offset, record.timestamp, record.value)
        if letter.job_id == job_id:
            out.append(letter)
            if len(out) > limit:
                del out[0]
    return out


async def erased_refusals(settings: Settings, letters: list[DeadLetter]) -> list[tuple[str, str]]:
    """(dead letter id, why) for each of `letters` that must not be replayed because of an
    erasure on record."""
    view = parse_erasures(await read_compacted(settings, erasures_topic(settings)))
    ids = erasure_ids(settings)
    out = []
    for letter in letters:
        why = replay_refusal(letter.event, view, ids)
        if why is not None:
            out.append((letter.id, why))
    return out


async def replayed_ids(settings: Settings, job_id: str) -> set[str]:
    """Dead letters of the job already replayed (from its log, kept 7 days)."""
    done: set[str] = set()
    async for item in read_job_log(settings, job_id):
        if item.kind == "replay":
            ids = item.details.get("dead_letters")
            if isinstance(ids, list):
                done.update(str(i) for i in ids)
    return done


@dataclass(frozen=True, slots=True)
class Replay:
    job_id: str
    replayed: list[str]
    event_ids: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"job {self.job_id}: {len(self.replayed)} dead letter(s) queued again: "
            + ", ".join(self.replayed)
        ]


async def replay(
    settings: Settings, job_id: str, ids: list[str], force: bool = False, actor: str = "cli"
) -> Replay:
    """Queue the events of dead letters `ids` of the job again (at the end of its queue,
    behind what is waiting there); they are delivered as new events with their first
    `webhook-id`. ConfigError names ids that are malformed, not the job's, or not
    replayable; CommandFailed names those already replayed (unless `force`)."""
    job = await get_job(settings, job_id)
    if not ids:
        raise ConfigError("dead letters", [FieldProblem("ids", "name at least one dead letter")])
    problems = []
    wanted = []
    for ident in dict.fromkeys(ids):
        try:
            parse_id(ident)
            wanted.append(ident)
        except ValueError as exc:
            problems.append(FieldProblem("ids", str(exc)))
    found = {d.id: d for d in await _read(settings, job_id, None, None, MAX_LIMIT)}
    for ident in wanted:
        letter = found.get(ident)
        if letter is None:
            problems.append(FieldProblem("ids", f"no dead letter {ident} of job {job_id}"))
        elif not letter.replayable:
            problems.append(
                FieldProblem("ids", f"dead letter {ident} holds no whole event to replay")
            )
    if problems:
        raise ConfigError("dead letters", problems)
    erased = await erased_refusals(settings, [found[i] for i in wanted])
    if erased:  # whatever `force` says: an erased user's data is never sent again
        raise CommandFailed(
            f"job {job_id}: nothing queued: "
            + "; ".join(f"dead letter {ident}: {why}" for ident, why in erased)
        )
    if not force:
        again = sorted(set(wanted) & await replayed_ids(settings, job_id))
        if again:
            raise CommandFailed(
                f"dead letter(s) {', '.join(again)} of job {job_id} were replayed already; "
                "nothing queued (replay them again with force)"
            )
    event_ids = []
    async with producer(settings) as prod:  # idempotent, acks=all
        for ident in wanted:
            record = queue_record_of(found[ident])
            assert record is not None
            key, value = record
            await prod.send_and_wait(job.config.queue_topic, value, key=key)
            event = found[ident].event
            event_ids.append(str(event.get("event_id")) if isinstance(event, dict) else "")
        note = entry(
            job_id,
            actor,
            "replay",
            f"{len(wanted)} dead letter(s) queued again: {', '.join(wanted)}",
            time.time(),
            dead_letters=wanted,
            event_ids=event_ids,
        )
        await prod.send_and_wait(settings.job_log_topic, note.to_bytes(), key=job_id.encode())
    return Replay(job_id, wanted, event_ids)
