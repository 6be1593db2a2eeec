"""`committed_offsets` asks again while the broker answers with a retriable error (on a
fresh cluster there is no group coordinator for a moment: the backlog of a new job read
"unknown" in CI), and gives up on a lasting or non-retriable one."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CoordinatorNotAvailableError,
    GroupAuthorizationFailedError,
    KafkaError,
)

from app.transport.group_offsets import committed_offsets


class Answers:
    """Stands in for the admin client: raises the queued errors, then answers."""

    def __init__(self, *errors: KafkaError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def list_consumer_group_offsets(
        self, group: str, group_coordinator_id: int | None = None, partitions: object = None
    ) -> dict[Any, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"group": group}


def admin(answers: Answers) -> AIOKafkaAdminClient:
    return cast(AIOKafkaAdminClient, answers)


async def test_a_missing_coordinator_is_asked_again() -> None:
    answers = Answers(CoordinatorNotAvailableError(), CoordinatorNotAvailableError())
    assert await committed_offsets(admin(answers), "g", retry_s=5) == {"group": "g"}
    assert answers.calls == 3


async def test_a_lasting_retriable_error_is_raised_after_the_deadline() -> None:
    answers = Answers(*[CoordinatorNotAvailableError() for _ in range(100)])
    with pytest.raises(CoordinatorNotAvailableError):
        await committed_offsets(admin(answers), "g", retry_s=0.3)
    assert 2 <= answers.calls < 100


async def test_a_non_retriable_error_is_raised_at_once() -> None:
    answers = Answers(GroupAuthorizationFailedError())
    with pytest.raises(GroupAuthorizationFailedError):
        await committed_offsets(admin(answers), "g", retry_s=5)
    assert answers.calls == 1
