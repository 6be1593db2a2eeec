"""Job-wide batches with per-user order (product doc: "Batches will be sent every 1 second or
immediately when the batch size specified"). Pure; delivery feeds it and sends what it gives.

- Batches fill across the whole job: a batch leaves when it holds `batch_size` events or
  when its oldest event has waited `window_s` (unbatched jobs: batches of one, at once).
- Order by key, not by lane: an event of a user whose earlier event is still in flight (or
  still waiting) never overtakes it. A user's events wait while one of theirs is in flight.
- One batch has one URL (a `url_template` can give users different URLs).
How many batches are in flight is the caller's business (the job's `worker_count` share).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Waiting(Generic[T]):
    key: str
    url: str
    arrived: float
    item: T


class JobBatcher(Generic[T]):
    """Waiting events of one job; `take` hands out batches that may be sent now."""

    def __init__(self, batch_size: int, window_s: float) -> None:
        self.batch_size = max(1, batch_size)
        self.window_s = window_s if batch_size > 1 else 0.0
        # Waiting events in arrival order, by sequence number: removing the ones a batch
        # takes is O(1) each (a list would be rebuilt per batch: O(n) per request).
        self._waiting: dict[int, _Waiting[T]] = {}
        self._seq = 0
        self._busy: dict[str, int] = {}  # key -> batches in flight holding it

    def __len__(self) -> int:
        return len(self._waiting)

    @property
    def busy_keys(self) -> int:
        return len(self._busy)

    def add(self, key: str, url: str, item: T, now: float) -> None:
        self._waiting[self._seq] = _Waiting(key, url, now, item)
        self._seq += 1

    def done(self, keys: list[str]) -> None:
        """A batch holding `keys` finished (delivered or given up): their next events may go."""
        for key in keys:
            left = self._busy.get(key, 0) - 1
            if left > 0:
                self._busy[key] = left
            else:
                self._busy.pop(key, None)

    def drop(self, unwanted: Callable[[T], bool]) -> int:
        """Forget waiting events (e.g. of a revoked partition); returns how many."""
        gone = [seq for seq, w in self._waiting.items() if unwanted(w.item)]
        for seq in gone:
            del self._waiting[seq]
        return len(gone)

    def next_deadline(self) -> float | None:
        """When the oldest event that could be sent will have waited the window."""
        for w in self._waiting.values():
            if w.key not in self._busy:
                return w.arrived + self.window_s
        return None

    def take(self, now: float) -> tuple[list[T], list[str]] | None:
        """A batch to send now and the keys it holds, or None (nothing ready)."""
        blocked: set[str] = set(self._busy)
        groups: dict[str, list[int]] = {}
        key_url: dict[str, str] = {}
        first_group: list[int] | None = None
        for index, w in self._waiting.items():
            if w.key in blocked:
                continue
            url_of_key = key_url.get(w.key)
            group = groups.get(w.url)
            if (url_of_key is not None and url_of_key != w.url) or (
                group is not None and len(group) >= self.batch_size
            ):
                blocked.add(w.key)  # its later events wait behind this one
                continue
            if group is None:
                group = groups[w.url] = []
                if first_group is None:
                    first_group = group
            group.append(index)
            key_url[w.key] = w.url
            if len(group) >= self.batch_size:
                return self._pop(group)  # full: it goes at once
        if first_group is None:
            return None
        ready = [g for g in groups.values() if self._waiting[g[0]].arrived + self.window_s <= now]
        if not ready:
            return None
        return self._pop(min(ready, key=lambda g: self._waiting[g[0]].arrived))

    def _pop(self, indexes: list[int]) -> tuple[list[T], list[str]]:
        batch = [self._waiting.pop(i) for i in indexes]
        keys = list(dict.fromkeys(w.key for w in batch))
        for key in keys:
            self._busy[key] = self._busy.get(key, 0) + 1
        return [w.item for w in batch], keys
