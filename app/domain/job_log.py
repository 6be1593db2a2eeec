"""Job logs (product doc: omitted requests are "not retried, but the cause is logged in the
job logs"). Pure: the entry format, its text rendering and `--since` parsing.

One entry per thing that happened to a job on a worker, kept on the job-log topic (key: job
id, so a job's entries stay in order on one partition; bounded retention):

- `state`: the job's state changed (`from`, `to`, `reason`, `next_run`);
- `omitted`: events were dead-lettered instead of delivered (`reason`, `status`, `events`,
  `event_ids`, the first `MAX_EVENT_IDS` of them);
- `error`: a request attempt failed and will be retried (`reason`, `status`, `attempt`,
  `retry_in_s`), or something failed that the worker did not expect;
- `backfill`: a backfill started or ended (`request_id`, `members`);
- `delivery`: a worker started or stopped running the job (`version`), or it was deleted;
- `replay`: dead letters were queued again (`dead_letters`, `event_ids`);
- `erased`: a user of the job's audiences was deleted (`erasure_id`, a keyed hash, never the
  user id: `app/domain/erasure.py`; `key_id`, `audiences`, `events`, `event_ids`).

Entries carry event ids, counts, statuses and reasons in the service's own words, never
profile data: text that came from outside and may hold some (a receiver's answer, a
template's or an exception's message) is taken out of the entry (`own_words`); it stays in
the dead letter (which holds the event anyway) and in the job's last error (`jobs show`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.domain.timefmt import rfc3339

KINDS = ("state", "omitted", "error", "backfill", "delivery", "replay", "erased")
MAX_MESSAGE_CHARS = 2000
MAX_EVENT_IDS = 100


@dataclass(frozen=True, slots=True)
class JobLogEntry:
    job_id: str
    time: float  # unix seconds
    worker_id: str
    kind: str
    message: str
    details: dict[str, Any]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "time": rfc3339(self.time),
            "ts": self.time,
            "worker_id": self.worker_id,
            "kind": self.kind,
            "message": self.message,
            **self.details,
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json_dict())

    def line(self) -> str:
        """One line for a terminal: time, worker, kind, message."""
        return f"{rfc3339(self.time)}  {self.worker_id}  {self.kind:<8}  {self.message}"


def entry(
    job_id: str, worker_id: str, kind: str, message: str, now: float, **details: Any
) -> JobLogEntry:
    """A bounded entry: the message is cut at `MAX_MESSAGE_CHARS`, event ids at
    `MAX_EVENT_IDS` (their full count stays in `events`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job log kind {kind!r}")
    ids = details.get("event_ids")
    if isinstance(ids, list) and len(ids) > MAX_EVENT_IDS:
        details["event_ids"] = ids[:MAX_EVENT_IDS]
    return JobLogEntry(job_id, now, worker_id, kind, message[:MAX_MESSAGE_CHARS], details)


OUTSIDE_TEXT = "[text of the answer or error: see the dead letter or `jobs show`]"


def own_words(text: str, outside: str | tuple[str, ...]) -> str:
    """`text` with each non-empty `outside` piece replaced by `OUTSIDE_TEXT`."""
    for piece in (outside,) if isinstance(outside, str) else outside:
        if piece.strip():
            text = text.replace(piece, OUTSIDE_TEXT)
    return text


_ANSWER = re.compile(r"^((?:omitted: )?HTTP \d{3}(?: is not retried)?): .*$", re.DOTALL)


def without_answer(reason: str) -> str:
    """A request's failure reason (`HTTP 503: <answer excerpt>`) without the answer, for
    reasons whose outside part is not known separately (a job's last error)."""
    return _ANSWER.sub(lambda m: f"{m.group(1)}: {OUTSIDE_TEXT}", reason)


def parse_entry(raw: bytes | None) -> JobLogEntry | None:
    """An entry read back; None for a record that is not one (never raises)."""
    if not raw:
        return None
    try:
        doc = orjson.loads(raw)
        if not isinstance(doc, dict):
            return None
        fixed = {"job_id", "time", "ts", "worker_id", "kind", "message"}
        return JobLogEntry(
            job_id=str(doc["job_id"]),
            time=float(doc["ts"]),
            worker_id=str(doc.get("worker_id", "?")),
            kind=str(doc.get("kind", "?")),
            message=str(doc.get("message", "")),
            details={k: v for k, v in doc.items() if k not in fixed},
        )
    except (ValueError, KeyError, TypeError):
        return None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """`--since`: a duration back from now (`90s`, `10m`, `2h`, `7d`) or an RFC 3339 time;
    returns unix seconds. ValueError names what is wrong."""
    text = text.strip()
    m = _DURATION.match(text)
    if m:
        return now - float(m[1]) * _UNITS[m[2]]
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration like 10m, 2h, 7d or an RFC 3339 time"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"--since {text!r}: an RFC 3339 time needs a zone (e.g. Z)")
    return when.timestamp()
