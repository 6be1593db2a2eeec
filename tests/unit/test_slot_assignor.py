"""The slots group's assignor: what members say (slots, then who they are) and what the
leader gives; a reader that knows only the slots list still reads the new user data."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from app.domain.slots import SIBLING_GRACE_S, SLOTS
from app.transport.slot_membership import SlotAssignor, _member_from, _slots_from


def meta(slots: list[int], **about: Any) -> ConsumerProtocolMemberMetadata:
    data: list[object] = [*slots, about] if about else [*slots]
    return ConsumerProtocolMemberMetadata(0, ["jobs"], orjson.dumps(data))


def given(
    assignor: SlotAssignor, members: dict[str, ConsumerProtocolMemberMetadata]
) -> dict[str, set[int]]:
    plan = assignor.assign(None, members)
    return {m: set(orjson.loads(a.user_data)) for m, a in plan.items()}


def test_a_starting_workers_first_process_leaves_its_siblings_share_and_asks_again() -> None:
    rechecks: list[float] = []
    assignor = SlotAssignor(lambda: frozenset(), lambda _s: None, None, rechecks.append)
    got = given(assignor, {"m1": meta([], worker="w", processes=2, age_s=1.0)})
    assert len(got["m1"]) == SLOTS // 2
    assert rechecks and rechecks[0] == pytest.approx(SIBLING_GRACE_S - 1.0)
    # The sibling joins: it gets the rest, nothing moves.
    both = given(
        assignor,
        {
            "m1": meta(sorted(got["m1"]), worker="w", processes=2, age_s=1.5),
            "m2": meta([], worker="w", processes=2, age_s=0.5),
        },
    )
    assert both["m1"] == got["m1"] and both["m2"] == set(range(SLOTS)) - got["m1"]
    assert len(rechecks) == 1


def test_after_the_grace_or_without_siblings_the_first_process_takes_every_slot() -> None:
    assignor = SlotAssignor(lambda: frozenset(), lambda _s: None)
    assert (
        len(
            given(assignor, {"m1": meta([], worker="w", processes=2, age_s=SIBLING_GRACE_S + 1)})[
                "m1"
            ]
        )
        == SLOTS
    )
    assert len(given(assignor, {"m1": meta([], worker="w", processes=1, age_s=0.1)})["m1"]) == SLOTS
    assert len(given(assignor, {"m1": meta([])})["m1"]) == SLOTS  # no member info at all


def test_user_data_is_read_defensively() -> None:
    data = orjson.dumps([3, 5, {"worker": "w", "processes": 2, "age_s": 0.5}])
    assert _slots_from(data) == {3, 5}
    assert _member_from(data) == ("w", 2, 0.5)
    for bad in (
        b"",
        b"{",
        b"[1, {}]",
        b'[{"worker": 1, "processes": 2, "age_s": 0}]',
        b'"x"',
        b'[{"worker": "w", "processes": 0, "age_s": 0}]',
    ):
        assert _member_from(bad) is None
    assert _slots_from(b'[1, -1, 64, "2", {"x": 1}]') == {1}
    # What this version sends, as the previous version's reader (a list of ints) sees it.
    metadata = SlotAssignor(lambda: frozenset({7}), lambda _s: None, lambda: {"worker": "w"})
    sent = orjson.loads(metadata.metadata(["jobs"]).user_data)
    assert [s for s in sent if isinstance(s, int)] == [7]
