"""Erasing a user (README, "Deleting users"). Pure: the router and the commands call it.

A tombstone on the input topic (key = user id, no value), written upstream or by
`webhooks users forget`, means the user is deleted. The router then (`plan_erasure`):
- queues, for each Audience Triggers job that sends exits, one `exit` per audience of the
  job the user was in, marked `reason: "deleted"`; it carries no profile data (the service
  keeps none: the state holds memberships, fingerprints and a pointer);
- removes the user's state (a tombstone on the state changelog, so compaction erases it);
- writes an erasure record (`erasure_record`, on the erasures topic, kept as long as dead
  letters are) so no dead letter of the user is replayed (`replay_refusal`);
- appends an `erased` entry to the log of each job whose audiences held the user.

The records name the user by an **erasure id**, never by the id itself: an HMAC-SHA256 of
the user id under a key derived from WEBHOOKS_SECRET_KEY (`ErasureIds`). Whoever holds the
key can find the entries of an id they know (`webhooks users forget` prints it; `webhooks
users erasure-id ID` computes it), whoever reads the logs cannot recover or test ids. Without
a secret key the id is keyed by the app id only: pseudonymous, not secret (documented).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.domain.errors import InvalidRecord
from app.domain.job_log import JobLogEntry, entry
from app.domain.jobs import JobConfig
from app.domain.queue_record import queue_value
from app.domain.records import UserRecord
from app.domain.routing import UserState
from app.domain.secrets import SecretBox, box_from_settings
from app.domain.trace_context import TraceContext
from app.settings import Settings

ERASED_REASON = "deleted"
NO_KEY_ID = "none"
SENDS_EXITS = frozenset({"enter_exit", "exit"})


# -- erasure ids --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErasureKey:
    key_id: str
    mac: bytes


class ErasureIds:
    """Erasure ids of user ids under the current key (and the previous ones, to read)."""

    def __init__(self, keys: list[ErasureKey]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self.keys = keys

    @classmethod
    def from_box(cls, box: SecretBox | None, app_id: str) -> ErasureIds:
        """From WEBHOOKS_SECRET_KEY (+ _PREVIOUS); without one, a key everyone can derive."""
        if box is None:
            mac = hashlib.sha256(b"audience-webhooks/no-key/erasure-id/" + app_id.encode())
            return cls([ErasureKey(NO_KEY_ID, mac.digest())])
        return cls([ErasureKey(k.key_id, k.erasure_mac) for k in box.keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> ErasureIds:
        """From the settings' keys (InvalidSecretKey for a malformed one)."""
        return cls.from_box(box_from_settings(settings), settings.app_id)

    @property
    def current(self) -> ErasureKey:
        return self.keys[0]

    def erasure_id(self, user_id: str) -> str:
        return _mac(self.current.mac, user_id)

    def record_key(self, user_id: str) -> bytes:
        """Key of the user's erasure record: `<key id>:<erasure id>`."""
        return f"{self.current.key_id}:{self.erasure_id(user_id)}".encode()

    def record_keys(self, user_id: str) -> dict[str, bytes]:
        """The user's erasure-record key under each key this process holds, by key id."""
        return {k.key_id: f"{k.key_id}:{_mac(k.mac, user_id)}".encode() for k in self.keys}


def _mac(key: bytes, user_id: str) -> str:
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:32]


# -- the tombstone ------------------------------------------------------------------------


def tombstone_user_id(key: bytes | None, max_chars: int) -> str:
    """The user a tombstone deletes: its key. InvalidRecord naming what is wrong."""
    if key is None:
        raise InvalidRecord("tombstone (no value) without a key: which user is deleted?")
    try:
        user_id = key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord("tombstone key: not UTF-8 text, so not a user id") from None
    if not user_id:
        raise InvalidRecord("tombstone key: empty, not a user id")
    if "\x00" in user_id:  # state keys with NUL are the service's own markers
        raise InvalidRecord("tombstone key: must not contain NUL characters")
    if len(user_id) > max_chars:
        raise InvalidRecord(f"tombstone key: {len(user_id)} characters, more than {max_chars}")
    return user_id


def check_user_id(user_id: str, max_chars: int) -> str:
    """A user id an operator asks to forget; ValueError naming what is wrong."""
    try:
        return tombstone_user_id(user_id.encode("utf-8", errors="strict"), max_chars)
    except (InvalidRecord, UnicodeEncodeError) as exc:
        reason = exc.reason if isinstance(exc, InvalidRecord) else "not encodable as UTF-8"
        raise ValueError(
            f"user id {user_id[:80]!r}: {reason.removeprefix('tombstone key: ')}"
        ) from None


# -- what a tombstone causes --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobErasure:
    """What the erasure meant for one job whose audiences held the user."""

    job_id: str
    audiences: tuple[str, ...]
    event_ids: tuple[str, ...]  # the exits queued; none when the job sends no exits


@dataclass(frozen=True, slots=True)
class Erasure:
    user_id: str
    source: tuple[str, int, int]  # topic, partition, offset of the tombstone
    known: bool  # the user had a state here
    jobs: tuple[JobErasure, ...]


def sends_exits(job: JobConfig) -> bool:
    return job.is_triggers and job.trigger_events in SENDS_EXITS


def erasure_event_id(topic: str, partition: int, offset: int, job_id: str, slug: str) -> str:
    """Stable across redeliveries of the tombstone: one per job and audience."""
    raw = f"{topic}/{partition}/{offset}/{job_id}/erased/{slug}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def plan_erasure(
    user_id: str,
    state: UserState | None,
    jobs: Iterable[JobConfig],
    source: tuple[str, int, int],
    now: str,
    known: bool | None = None,
    trace: TraceContext | None = None,
) -> tuple[list[tuple[str, bytes]], Erasure]:
    """The (queue topic, queue record) of every exit the erasure sends, and what it meant
    for each job; `now` (RFC 3339) is the exits' time; `known`: the user had a state (by
    default: `state` is not None; a stored state that cannot be read is known too); `trace`:
    the tombstone's trace context, continued by the exits' webhook requests."""
    audiences = state.audiences if state is not None else {}
    queued: list[tuple[str, bytes]] = []
    affected: list[JobErasure] = []
    record = UserRecord(id=user_id, data={}, segment_events=(), by_fields={}, timestamp=now)
    for job in jobs:
        held = tuple(slug for slug in job.audiences if slug in audiences)
        if not held:
            continue
        ids: list[str] = []
        if sends_exits(job):
            for slug in held:
                ev_id = erasure_event_id(*source, job.id, slug)
                event = {
                    "id": audiences[slug],
                    "slug": slug,
                    "event": "exit",
                    "exit": now,
                    "reason": ERASED_REASON,
                }
                value = queue_value(
                    record, job.id, ev_id, (event,), reason=ERASED_REASON, trace=trace
                )
                queued.append((job.queue_topic, value))
                ids.append(ev_id)
        affected.append(JobErasure(job.id, held, tuple(ids)))
    was_known = state is not None if known is None else known
    return queued, Erasure(user_id, source, was_known, tuple(affected))


def erasure_record(erasure: Erasure, ids: ErasureIds, now: float, at: str) -> bytes:
    """The erasures-topic record (`topics/webhook-erasures.json`); no user id in it."""
    topic, partition, offset = erasure.source
    return orjson.dumps(
        {
            "erasure_id": ids.erasure_id(erasure.user_id),
            "key_id": ids.current.key_id,
            "erased_at": at,
            "ts": now,
            "tombstone": {"topic": topic, "partition": partition, "offset": offset},
            "jobs": [j.job_id for j in erasure.jobs],
        }
    )


def log_entries(
    erasure: Erasure, jobs: Mapping[str, JobConfig], ids: ErasureIds, worker_id: str, now: float
) -> list[JobLogEntry]:
    """One `erased` job-log entry for each job whose audiences held the user."""
    topic, partition, offset = erasure.source
    erasure_id = ids.erasure_id(erasure.user_id)
    out = []
    for item in erasure.jobs:
        job = jobs.get(item.job_id)
        if item.event_ids:
            outcome = f"{len(item.event_ids)} exit event(s) queued, marked deleted"
        elif job is not None and not job.is_triggers:
            outcome = "nothing sent (enrichment jobs send nothing for a deleted user)"
        else:
            outcome = "no exit sent (the job does not send exits)"
        message = (
            f"user {erasure_id} deleted (tombstone at {topic}[{partition}]@{offset}), "
            f"was in {', '.join(item.audiences)}: {outcome}"
        )
        out.append(
            entry(
                item.job_id,
                worker_id,
                "erased",
                message,
                now,
                erasure_id=erasure_id,
                key_id=ids.current.key_id,
                audiences=list(item.audiences),
                events=len(item.event_ids),
                event_ids=list(item.event_ids),
            )
        )
    return out


# -- dead letters of erased users ---------------------------------------------------------


def parse_erasures(view: Mapping[bytes, bytes]) -> dict[str, dict[str, Any]]:
    """The erasures topic's compacted view, by record key (unreadable records kept as {})."""
    out: dict[str, dict[str, Any]] = {}
    for key, raw in view.items():
        try:
            doc = orjson.loads(raw)
        except ValueError:
            doc = {}
        out[key.decode("utf-8", errors="replace")] = doc if isinstance(doc, dict) else {}
    return out


def dead_letter_user(event: Any) -> str | None:
    """The user a dead letter's event is about (queued events and input records: `id`)."""
    if isinstance(event, dict):
        user_id = event.get("id")
        if isinstance(user_id, str):
            return user_id
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            return str(user_id)
    return None


def replay_refusal(
    event: Any, erasures: Mapping[str, Mapping[str, Any]], ids: ErasureIds
) -> str | None:
    """Why a dead letter's event must not be replayed because of an erasure, or None.

    Refused: an event of a user with an erasure on record (even one of a profile that came
    back after it: a dead letter does not tell reliably which profile it holds), and any
    event while erasures are on record under a key this process does not hold (it cannot
    tell whose they are). An erasure's own exit (no profile data) may be replayed."""
    if not erasures:
        return None
    if (
        isinstance(event, dict)
        and event.get("reason") == ERASED_REASON
        and not event.get("data")
        and not event.get("by_fields")
    ):
        return None
    held = {k.key_id for k in ids.keys}
    unknown = sorted({key.partition(":")[0] for key in erasures} - held)
    if unknown:
        return (
            f"erasures are on record under secret key id(s) {', '.join(unknown)}, which this "
            "command does not have (WEBHOOKS_SECRET_KEY / _PREVIOUS): it cannot tell whether "
            "the event belongs to an erased user, so nothing is replayed"
        )
    user_id = dead_letter_user(event)
    if user_id is None:
        return None
    for key in ids.record_keys(user_id).values():
        found = erasures.get(key.decode())
        if found is not None:
            return (
                f"its user was erased ({found.get('erased_at', 'time unknown')}, erasure id "
                f"{found.get('erasure_id', '?')}): events of erased users are never replayed"
            )
    return None
