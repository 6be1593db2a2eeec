"""Delivery slots: which worker process delivers which job (pure).

Every job belongs to one of `SLOTS` slots for ever (`slot_of`). The worker processes share
the slots out through one small consumer group; a process delivers exactly the running jobs
of the slots it holds, so a job has one deliverer at a time and its `worker_count` is a
local limit.

`plan_slots` is the group leader's decision, made from what each member says it still holds.
It is two-phase (like KIP-429 on the classic protocol): a slot that a member still holds is
never given to another member in the same round. To move a slot the leader leaves it out of
its holder's assignment; the holder hands its jobs over (in-flight requests end, offsets are
committed), stops holding it and asks for a new round, in which the slot is free and goes to
a member below its quota. So two processes never deliver the same job at once, except
after a process was dropped from the group while still running (as with any consumer group).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

SLOTS = 64


def slot_of(job_id: str, slots: int = SLOTS) -> int:
    """The slot of a job: a stable hash of its id (never change it: jobs would move)."""
    return zlib.crc32(job_id.encode()) % slots


def plan_slots(held: Mapping[str, frozenset[int]], slots: int = SLOTS) -> dict[str, set[int]]:
    """Each member's slots after this round, from the slots each member still holds.

    - a slot held by exactly one member stays with it, unless that member holds more than
      its quota (the excess is given to nobody this round: the holder releases it);
    - a slot held by two members (only after a member was dropped and came back) is given
      to nobody, so both release it, and it is free next round;
    - free slots go to the members with the fewest, while they are below their quota.

    Quotas: `slots // n` each, and one more for the first `slots % n` members by id. The
    members are balanced (within one slot) once every holder has released what it lost.
    """
    members = sorted(held)
    if not members:
        return {}
    base, extra = divmod(slots, len(members))
    quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(members)}
    holders: dict[int, list[str]] = {}
    for member in members:
        for slot in held[member]:
            if 0 <= slot < slots:
                holders.setdefault(slot, []).append(member)
    plan: dict[str, set[int]] = {m: set() for m in members}
    for slot, owners in sorted(holders.items()):
        if len(owners) == 1:
            plan[owners[0]].add(slot)
    for member in members:
        keep = sorted(plan[member])
        if len(keep) > quota[member]:
            plan[member] = set(keep[: quota[member]])
    # A slot that is held (by anyone) and not kept is being released: nobody gets it yet.
    free = [s for s in range(slots) if s not in holders]
    for slot in free:
        below = [m for m in members if len(plan[m]) < quota[m]]
        if not below:
            break
        taker = min(below, key=lambda m: (len(plan[m]), m))
        plan[taker].add(slot)
    return plan


# How long the shares of a starting worker's processes that have not joined yet wait for
# them: a process joins after its Faust app and registry are up, 2-5 s after its first
# sibling on a busy 2-core machine. A process that never comes is noticed as late as a dead
# member is (the 10 s session timeout).
SIBLING_GRACE_S = 10.0


def plan_with_absent(
    held: Mapping[str, frozenset[int]], absent: int, slots: int = SLOTS
) -> dict[str, set[int]]:
    """`plan_slots` as if `absent` more members (holding nothing) were in the group: the
    present members get their share of the larger group, and the absent members' shares
    stay unassigned until they join (or the leader plans without them).

    Used while a worker's processes are starting: the first process to join would otherwise
    take every slot, start every job, and hand half of them over a second later."""
    phantoms = {f"\x7fabsent-{i}": frozenset[int]() for i in range(absent)}
    plan = plan_slots({**held, **phantoms}, slots)
    return {member: plan[member] for member in held}


def missing_siblings(
    members: Mapping[str, tuple[str, int, float]], grace_s: float = SIBLING_GRACE_S
) -> tuple[int, float]:
    """From each member's (worker, processes its worker runs, seconds since it started):
    how many processes of workers that started less than `grace_s` ago have not joined yet,
    and how long until the youngest such worker's grace ends (0 when none is missing)."""
    workers: dict[str, tuple[int, int, float]] = {}  # worker -> (expected, present, youngest)
    for worker, processes, age_s in members.values():
        expected, present, youngest = workers.get(worker, (processes, 0, age_s))
        workers[worker] = (max(expected, processes), present + 1, min(youngest, age_s))
    missing = 0
    wait_s = 0.0
    for expected, present, youngest in workers.values():
        if present < expected and youngest < grace_s:
            missing += expected - present
            wait_s = max(wait_s, grace_s - youngest)
    return missing, wait_s
