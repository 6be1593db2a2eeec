"""Job-wide batching: batches fill across users, leave when full or when their oldest event
has waited the window, and never reorder one user's events."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.batching import JobBatcher

URL = "https://hooks.example.com/in"


def test_ten_users_arriving_together_fill_one_batch_at_once() -> None:
    b: JobBatcher[int] = JobBatcher(batch_size=10, window_s=1.0)
    for n in range(10):
        b.add(f"u{n}", URL, n, now=0.0)
    got = b.take(now=0.0)
    assert got is not None and got[0] == list(range(10))


def test_a_partial_batch_leaves_when_its_oldest_event_has_waited_the_window() -> None:
    b: JobBatcher[int] = JobBatcher(batch_size=10, window_s=1.0)
    b.add("u1", URL, 1, now=0.0)
    b.add("u2", URL, 2, now=0.5)
    assert b.take(now=0.9) is None
    assert b.next_deadline() == 1.0
    got = b.take(now=1.0)
    assert got is not None and got[0] == [1, 2]


def test_a_users_next_event_waits_while_one_is_in_flight() -> None:
    b: JobBatcher[str] = JobBatcher(batch_size=1, window_s=0.0)
    b.add("u1", URL, "u1-a", now=0.0)
    b.add("u1", URL, "u1-b", now=0.0)
    b.add("u2", URL, "u2-a", now=0.0)
    first = b.take(0.0)
    second = b.take(0.0)
    assert first == (["u1-a"], ["u1"]) and second == (["u2-a"], ["u2"])
    assert b.take(0.0) is None  # u1-b waits for u1-a
    b.done(["u1"])
    assert b.take(0.0) == (["u1-b"], ["u1"])


def test_different_urls_make_different_batches_without_reordering_a_user() -> None:
    b: JobBatcher[str] = JobBatcher(batch_size=5, window_s=0.0)
    b.add("u1", "https://a/", "u1-a", now=0.0)
    b.add("u1", "https://b/", "u1-b", now=0.0)
    b.add("u2", "https://b/", "u2-b", now=0.0)
    first = b.take(0.0)
    assert first is not None and first[0] == ["u1-a"]
    second = b.take(0.0)
    assert second is not None and second[0] == ["u2-b"]
    b.done(["u1"])
    third = b.take(0.0)
    assert third is not None and third[0] == ["u1-b"]


@settings(max_examples=300, deadline=None)
@given(
    batch_size=st.integers(1, 6),
    arrivals=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(["https://a/", "https://b/"])),
        min_size=1,
        max_size=60,
    ),
    finish_order=st.randoms(use_true_random=False),
)
def test_every_event_is_sent_once_in_per_user_order(
    batch_size: int, arrivals: list[tuple[int, str]], finish_order: object
) -> None:
    import random

    rng = finish_order if isinstance(finish_order, random.Random) else random.Random(0)
    b: JobBatcher[tuple[str, int]] = JobBatcher(batch_size=batch_size, window_s=1.0)
    for seq, (user, url) in enumerate(arrivals):
        b.add(f"u{user}", url, (f"u{user}", seq), now=0.0)
    sent: list[tuple[str, int]] = []
    in_flight: list[list[str]] = []
    now = 0.0
    while len(b) or in_flight:
        got = b.take(now)
        if got is not None:
            items, keys = got
            assert 1 <= len(items) <= batch_size
            assert len({arrivals[seq][1] for _, seq in items}) == 1, "one URL per batch"
            busy = {k for ks in in_flight for k in ks}
            assert not busy & set(keys), "a user in two batches in flight"
            sent.extend(items)
            in_flight.append(keys)
            continue
        if in_flight:
            b.done(in_flight.pop(rng.randrange(len(in_flight))))
        else:
            now += 1.0
    assert sorted(seq for _, seq in sent) == list(range(len(arrivals)))
    for name in {u for u, _ in sent}:
        seqs = [seq for u, seq in sent if u == name]
        assert seqs == sorted(seqs), f"{name} reordered: {seqs}"
