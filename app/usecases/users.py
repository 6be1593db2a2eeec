"""User use cases: erase users without upstream (`webhooks users forget`, `POST
/v1/users/{id}/forget`). The command writes what upstream would, a tombstone on the input
topic (key = user id, no value), so the one erasure path runs (`app/domain/erasure.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.erasure import check_user_id
from app.domain.errors import ConfigError, FieldProblem
from app.domain.record_routing import MAX_ID_CHARS
from app.settings import Settings
from app.transport.kafka import producer
from app.usecases.keys import erasure_ids

MAX_USERS = 10_000


@dataclass(frozen=True, slots=True)
class Forgotten:
    """A tombstone written: where, and the erasure id the job logs will name."""

    user_id: str
    erasure_id: str
    topic: str
    partition: int
    offset: int

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "erasure_id": self.erasure_id,
            "tombstone": {"topic": self.topic, "partition": self.partition, "offset": self.offset},
        }

    def line(self) -> str:
        return (
            f"user {self.user_id}: tombstone written to {self.topic}[{self.partition}]"
            f"@{self.offset}; erasure id {self.erasure_id}"
        )


def check_ids(user_ids: list[str]) -> list[str]:
    """The ids, each once; ConfigError naming every one that is not a user id."""
    problems = []
    if not user_ids:
        problems.append(FieldProblem("ids", "name at least one user id"))
    if len(user_ids) > MAX_USERS:
        problems.append(FieldProblem("ids", f"{len(user_ids)} ids, more than {MAX_USERS}"))
    for user_id in user_ids:
        try:
            check_user_id(user_id, MAX_ID_CHARS)
        except ValueError as exc:
            problems.append(FieldProblem("ids", str(exc)))
    if problems:
        raise ConfigError("users", problems)
    return list(dict.fromkeys(user_ids))


async def forget(settings: Settings, user_ids: list[str]) -> list[Forgotten]:
    """Write a tombstone for each user to the input topic, partitioned like the user's
    records (Kafka's default partitioner on the key, as the Java client); return once the
    broker acknowledged them all. The workers then erase the users."""
    ids = check_ids(user_ids)
    hashes = erasure_ids(settings)
    topic = settings.input_topic
    out = []
    async with producer(settings) as prod:  # idempotent, acks=all
        sent = [(u, await prod.send(topic, None, key=u.encode())) for u in ids]
        for user_id, ack in sent:
            meta = await ack
            out.append(
                Forgotten(user_id, hashes.erasure_id(user_id), topic, meta.partition, meta.offset)
            )
    return out
