"""The per-user state is kept in memory for every user: its bytes must cost their size."""

from __future__ import annotations

import tracemalloc

from app.domain.routing import UserState


def test_a_stored_state_costs_about_its_size() -> None:
    state = UserState(audiences={"newsletter": "s1"}, fingerprints={"job": "ab:cd"}, last=(1, 2))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [state.to_bytes() for _ in range(1000)]
        per_state = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert per_state < 4 * len(kept[0]), f"{per_state:.0f} bytes per {len(kept[0])}-byte state"
