"""Which queue offsets may be committed: the lowest offset not yet finished, per partition.

Events finish out of order (lanes run in parallel); a partition's commit point only moves
past an offset once it and everything before it has been delivered or dead-lettered.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

P = TypeVar("P")


class OffsetTracker(Generic[P]):
    """Tracks started and finished offsets per partition `P` (e.g. a TopicPartition)."""

    def __init__(self) -> None:
        self._pending: dict[P, deque[int]] = {}
        self._done: dict[P, set[int]] = {}
        self._next: dict[P, int] = {}
        self.in_flight = 0

    def started(self, part: P, offset: int) -> None:
        self._pending.setdefault(part, deque()).append(offset)
        self._done.setdefault(part, set())
        self.in_flight += 1

    def finished(self, part: P, offset: int) -> None:
        done = self._done.get(part)
        if done is None:
            return  # the partition was revoked meanwhile; its new owner redelivers
        done.add(offset)
        self.in_flight -= 1
        pending = self._pending[part]
        while pending and pending[0] in done:
            head = pending.popleft()
            done.discard(head)
            self._next[part] = pending[0] if pending else head + 1

    def owns(self, part: P) -> bool:
        return part in self._pending

    def forget(self, part: P) -> None:
        pending = self._pending.pop(part, deque())
        done = self._done.pop(part, set())
        self.in_flight -= len(pending) - len(done)
        self._next.pop(part, None)

    def committable(self) -> dict[P, int]:
        """Per partition, the offset to commit (the next one to consume after a restart)."""
        return dict(self._next)
