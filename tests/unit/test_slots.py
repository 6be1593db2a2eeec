"""Delivery slots: the leader's two-phase, sticky plan (`plan_slots`) and `slot_of`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.domain.slots import (
    SIBLING_GRACE_S,
    SLOTS,
    missing_siblings,
    plan_slots,
    plan_with_absent,
    slot_of,
)

members_st = st.lists(st.sampled_from([f"w{i}" for i in range(8)]), min_size=1, unique=True)


@st.composite
def holdings(draw: st.DrawFn) -> dict[str, frozenset[int]]:
    """What each member says it holds, including overlaps (a member dropped and back)."""
    members = draw(members_st)
    slots = draw(st.integers(1, 80))
    held = {m: frozenset(draw(st.sets(st.integers(0, slots - 1), max_size=slots))) for m in members}
    return held | {"_slots": frozenset({slots})}


def _split(drawn: dict[str, frozenset[int]]) -> tuple[dict[str, frozenset[int]], int]:
    slots = next(iter(drawn.pop("_slots")))
    return drawn, slots


@given(holdings())
def test_a_held_slot_never_goes_to_another_member_and_no_slot_has_two(
    drawn: dict[str, frozenset[int]],
) -> None:
    held, slots = _split(dict(drawn))
    plan = plan_slots(held, slots)
    assert set(plan) == set(held)
    owners: dict[int, str] = {}
    for member, got in plan.items():
        for slot in got:
            assert 0 <= slot < slots
            assert slot not in owners, f"slot {slot} planned for two members"
            owners[slot] = member
    for slot, member in owners.items():
        holders = {m for m, h in held.items() if slot in h}
        # Given only to its one holder, or (when nobody holds it) to anyone.
        assert holders <= {member}, (slot, member, holders)
    quota = -(-slots // len(held))
    assert all(len(got) <= quota for got in plan.values())


@given(holdings())
def test_members_who_release_what_they_lost_are_balanced_after_two_rounds(
    drawn: dict[str, frozenset[int]],
) -> None:
    held, slots = _split(dict(drawn))
    for _ in range(2):  # each member hands over what it lost and takes what it got
        plan = plan_slots(held, slots)
        held = {m: frozenset(got) for m, got in plan.items()}
    sizes = [len(h) for h in held.values()]
    assert sum(sizes) == slots, "every slot has a holder"
    assert max(sizes) - min(sizes) <= 1


@given(st.integers(1, 7))
def test_a_new_member_takes_only_its_share_the_others_keep_theirs(existing: int) -> None:
    members = [f"w{i}" for i in range(existing)]
    held: dict[str, frozenset[int]] = {m: frozenset() for m in members}
    for _ in range(2):
        held = {m: frozenset(s) for m, s in plan_slots(held).items()}
    before = dict(held)
    held["w9"] = frozenset()
    first = plan_slots(held)
    assert first["w9"] == set(), "nothing is free yet: slots are released first"
    for m in members:
        assert first[m] <= before[m], "nobody gets another member's slot"
    released = {s for m in members for s in before[m] - first[m]}
    assert len(released) == SLOTS // (existing + 1)  # only the newcomer's share moves
    held = {m: frozenset(s) for m, s in first.items()}
    second = plan_slots(held)
    assert second["w9"] == released
    for m in members:
        assert second[m] == first[m]


def test_a_member_leaving_frees_its_slots_at_once() -> None:
    held = {"a": frozenset(range(32)), "b": frozenset(range(32, 64))}
    plan = plan_slots({"a": held["a"]})
    assert plan["a"] == set(range(64))


def test_slot_of_is_stable() -> None:
    # A job's slot must never change: a new hash would move every job at an upgrade.
    assert {j: slot_of(j) for j in ("job-1", "orders", "a")} == {"job-1": 63, "orders": 46, "a": 3}
    assert all(0 <= slot_of(f"job-{i}") < SLOTS for i in range(1000))
    assert len({slot_of(f"job-{i}") for i in range(1000)}) == SLOTS  # every slot is used


# -- a worker's processes starting: the absent ones' shares wait for them ------------------


@given(holdings(), st.integers(0, 4))
def test_with_absent_members_a_held_slot_still_never_moves_and_their_share_stays_free(
    drawn: dict[str, frozenset[int]], absent: int
) -> None:
    held, slots = _split(dict(drawn))
    plan = plan_with_absent(held, absent, slots)
    assert set(plan) == set(held)
    owners: dict[int, str] = {}
    for member, got in plan.items():
        for slot in got:
            assert slot not in owners
            owners[slot] = member
            assert {m for m, h in held.items() if slot in h} <= {member}
    quota = -(-slots // (len(held) + absent))
    assert all(len(got) <= quota for got in plan.values())


def test_the_first_process_of_two_takes_half_and_its_sibling_the_rest_without_a_move() -> None:
    first = plan_with_absent({"a": frozenset()}, 1)
    assert len(first["a"]) == SLOTS // 2
    both = plan_slots({"a": frozenset(first["a"]), "b": frozenset()})
    assert both["a"] == first["a"], "nothing is taken from the first process"
    assert both["b"] == set(range(SLOTS)) - first["a"]


def test_missing_siblings_counts_the_processes_of_young_workers_not_joined_yet() -> None:
    assert missing_siblings({"m1": ("w", 2, 0.5)}) == (1, SIBLING_GRACE_S - 0.5)
    assert missing_siblings({"m1": ("w", 2, 0.5), "m2": ("w", 2, 0.1)}) == (0, 0.0)
    # After the grace, or for a worker running one process, nobody is waited for.
    assert missing_siblings({"m1": ("w", 2, SIBLING_GRACE_S + 1)}) == (0, 0.0)
    assert missing_siblings({"m1": ("w", 1, 0.1)}) == (0, 0.0)
    # A process started again beside an old sibling is young, but nobody is missing.
    assert missing_siblings({"m1": ("w", 2, 100.0), "m2": ("w", 2, 0.2)}) == (0, 0.0)
    # Workers are counted apart.
    got = missing_siblings({"m1": ("w", 4, 1.0), "m2": ("v", 2, 50.0), "m3": ("w", 4, 2.0)})
    assert got == (2, SIBLING_GRACE_S - 1.0)
