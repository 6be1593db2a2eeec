"""OffsetTracker: the commit point per partition only passes offsets that are finished."""

from __future__ import annotations

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
