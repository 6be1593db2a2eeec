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
        self._tracked: dict[P, set[int]] = {}  # the same offsets as `_pending`, to look up
        self._done: dict[P, set[int]] = {}
        self._next: dict[P, int] = {}
        self.in_flight = 0

    def started(self, part: P, offset: int) -> bool:
        """Track `offset`; False (and nothing tracked) for an offset not above every one
        started before on `part`: a record fetched twice must not be tracked twice, or the
        commit point would wait forever on its second copy."""
        pending = self._pending.setdefault(part, deque())
        self._done.setdefault(part, set())
        tracked = self._tracked.setdefault(part, set())
        last = pending[-1] if pending else self._next.get(part, -1) - 1
        if offset <= last:
            return False
        pending.append(offset)
        tracked.add(offset)
        self.in_flight += 1
        return True

    def finished(self, part: P, offset: int) -> None:
        done = self._done.get(part)
        if done is None:
            return  # the partition was revoked meanwhile; its new owner redelivers
        tracked = self._tracked[part]
        if offset not in tracked or offset in done:
            return  # not in flight here (finished already, or of an earlier assignment)
        done.add(offset)
        self.in_flight -= 1
        pending = self._pending[part]
        while pending and pending[0] in done:
            head = pending.popleft()
            done.discard(head)
            tracked.discard(head)
            self._next[part] = pending[0] if pending else head + 1

    def owns(self, part: P) -> bool:
        return part in self._pending

    def forget(self, part: P) -> None:
        pending = self._pending.pop(part, deque())
        done = self._done.pop(part, set())
        self._tracked.pop(part, None)
        self.in_flight -= len(pending) - len(done)
        self._next.pop(part, None)

    def diagnostics(self) -> dict[str, object]:
        """Per partition: the head offset the commit waits on, how many pending and done."""
        return {
            str(part): {
                "head": pending[0] if pending else None,
                "pending": len(pending),
                "done": len(self._done.get(part, ())),
                "next": self._next.get(part),
            }
            for part, pending in self._pending.items()
        } | {"in_flight": self.in_flight}

    def committable(self) -> dict[P, int]:
        """Per partition, the offset to commit (the next one to consume after a restart)."""
        return dict(self._next)

    def done_above(self, part: P) -> set[int]:
        """Offsets finished beyond the partition's commit point (waiting on an earlier one)."""
        return set(self._done.get(part, ()))


MAX_METADATA_CHARS = 3000  # Kafka's offset.metadata.max.bytes defaults to 4096


MAX_SKIPPED = 1_000_000  # more offsets than delivery ever has unfinished at once


def encode_done(commit: int, done: set[int]) -> str:
    """Finished offsets above a commit point as `start-end` ranges relative to it ("" if none).

    Stored as the commit's metadata, so a restart can skip what was already delivered
    beyond the contiguous commit point instead of sending it again. At most
    `MAX_METADATA_CHARS`: ranges that do not fit (the highest) are left out, and those
    offsets are sent again after a restart (a recognisable duplicate, never a loss).
    """
    parts: list[str] = []
    length = 0  # of ",".join(parts)
    for start, end in _runs(sorted(o for o in done if o >= commit)):
        part = f"{start - commit}-{end - commit}"
        added = len(part) + (1 if parts else 0)
        if length + added > MAX_METADATA_CHARS:
            break
        parts.append(part)
        length += added
    return ",".join(parts)


def _runs(offsets: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and offset == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return runs


def decode_done(commit: int, metadata: str) -> set[int]:
    """The offsets `encode_done` recorded; unreadable metadata (anything but ASCII-digit
    ranges, or more than `MAX_SKIPPED` offsets) means none."""
    out: set[int] = set()
    for part in filter(None, (metadata or "").split(",")):
        start, sep, end = part.partition("-")
        if not (sep and _digits(start) and _digits(end)):
            return set()
        first, last = commit + int(start), commit + int(end)
        if last < first or len(out) + (last - first + 1) > MAX_SKIPPED:
            return set()
        out.update(range(first, last + 1))
    return out


def _digits(text: str) -> bool:
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()
