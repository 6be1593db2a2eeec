"""OffsetTracker: the commit point per partition only passes offsets that are finished."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.offsets import OffsetTracker


def started(tracker: OffsetTracker[str], part: str, *offsets: int) -> None:
    for offset in offsets:
        tracker.started(part, offset)


def test_in_order_finish_moves_to_last_plus_one() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    started(t, "p0", 5, 6, 7)
    t.finished("p0", 5)
    assert t.committable() == {"p0": 6}
    t.finished("p0", 6)
    t.finished("p0", 7)
    assert t.committable() == {"p0": 8}


def test_out_of_order_finish_waits_for_the_gap() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    started(t, "p0", 0, 1, 2, 3)
    t.finished("p0", 0)
    t.finished("p0", 3)
    t.finished("p0", 2)
    assert t.committable() == {"p0": 1}
    t.finished("p0", 1)
    assert t.committable() == {"p0": 4}


def test_partitions_are_independent() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    started(t, "p0", 0, 1)
    started(t, "p1", 10, 11)
    t.finished("p1", 10)
    t.finished("p1", 11)
    t.finished("p0", 1)
    assert t.committable() == {"p1": 12}
    t.finished("p0", 0)
    assert t.committable() == {"p0": 2, "p1": 12}


def test_forget_drops_a_partition() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    started(t, "p0", 0, 1, 2)
    started(t, "p1", 0)
    t.finished("p0", 0)
    t.finished("p0", 2)
    assert t.in_flight == 2
    t.forget("p0")
    assert "p0" not in t.committable()
    assert not t.owns("p0")
    assert t.in_flight == 1
    t.finished("p0", 1)
    assert t.in_flight == 1
    assert "p0" not in t.committable()


def test_in_flight_counts_started_minus_finished() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    assert t.in_flight == 0
    started(t, "p0", 0, 1, 2)
    started(t, "p1", 0)
    assert t.in_flight == 4
    t.finished("p0", 1)
    t.finished("p1", 0)
    assert t.in_flight == 2


def test_a_record_fetched_twice_is_tracked_once() -> None:
    """A fetch from before a rebalance delivered again after it: the second copy is refused,
    so the commit point cannot wait forever on it (the issue-10 two-worker hang)."""
    t: OffsetTracker[str] = OffsetTracker()
    started(t, "p0", 0, 1, 2)
    assert t.started("p0", 1) is False
    assert t.started("p0", 2) is False
    for offset in (2, 1, 0):
        t.finished("p0", offset)
    assert t.committable() == {"p0": 3}
    assert t.in_flight == 0
    assert t.started("p0", 2) is False  # below the commit point: done already
    assert t.started("p0", 3) is True


def test_finishing_an_offset_twice_or_never_started_changes_nothing() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    started(t, "p0", 5, 6, 7)
    t.finished("p0", 6)
    t.finished("p0", 6)
    t.finished("p0", 9)
    t.finished("p0", 1)
    assert t.in_flight == 2
    t.finished("p0", 5)
    t.finished("p0", 7)
    assert t.committable() == {"p0": 8}
    assert t.in_flight == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=120))
def test_commit_point_never_passes_an_unfinished_offset(ops: list[tuple[bool, int]]) -> None:
    """Any interleaving of (re)starts and finishes, including duplicates and strays: the
    commit point only covers offsets that were finished, and in_flight counts the rest."""
    t: OffsetTracker[str] = OffsetTracker()
    tracked: set[int] = set()
    finished: set[int] = set()
    for start, offset in ops:
        if start:
            if t.started("p", offset):
                tracked.add(offset)
        else:
            t.finished("p", offset)
            if offset in tracked:
                finished.add(offset)
    commit = t.committable().get("p")
    if commit is not None:
        assert all(o in finished for o in tracked if o < commit)
    assert t.in_flight == len(tracked - finished)
