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
