"""Commit metadata (`encode_done` / `decode_done`): the offsets finished above a commit point,
stored as relative `start-end` ranges in the commit's metadata.

What a restart relies on: decoding gives back exactly what was encoded when it fits; a set too
fragmented to fit is cut, the text stays within MAX_METADATA_CHARS, and what it decodes to is
a subset of the finished offsets (never an offset that was not done, or a restart would skip
an event that was never delivered); metadata that cannot be read means "nothing to skip".
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.domain.offsets import MAX_METADATA_CHARS, decode_done, encode_done


def full_ranges(commit: int, done: set[int]) -> str:
    """The uncut encoding, written independently: maximal runs of offsets >= commit."""
    runs: list[list[int]] = []
    for offset in sorted(o for o in done if o >= commit):
        if runs and offset == runs[-1][1] + 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    return ",".join(f"{a - commit}-{b - commit}" for a, b in runs)


def above(commit: int, done: set[int]) -> set[int]:
    return {o for o in done if o >= commit}


def exact_fit(commit: int) -> set[int]:
    """Offsets whose full encoding is exactly MAX_METADATA_CHARS characters long: 374
    single offsets at relative 100, 102, ..., 846 (`rrr-rrr`) and the run 848..1000."""
    done = {commit + r for r in range(100, 848, 2)} | set(range(commit + 848, commit + 1001))
    assert len(full_ranges(commit, done)) == MAX_METADATA_CHARS  # precondition of the tests
    return done


# -- round trip --------------------------------------------------------------------------


def test_nothing_done_is_the_empty_string() -> None:
    assert encode_done(42, set()) == ""
    assert decode_done(42, "") == set()


def test_offsets_become_ranges_relative_to_the_commit() -> None:
    assert encode_done(100, {101, 102, 103, 107, 110, 111}) == "1-3,7-7,10-11"
    assert decode_done(100, "1-3,7-7,10-11") == {101, 102, 103, 107, 110, 111}


def test_the_commit_offset_itself_is_relative_zero() -> None:
    assert encode_done(5, {5}) == "0-0"
    assert decode_done(5, "0-0") == {5}


def test_offsets_below_the_commit_are_left_out() -> None:
    text = encode_done(10, {3, 9, 10, 12})
    assert text == "0-0,2-2"
    assert decode_done(10, text) == {10, 12}
    assert encode_done(10, {1, 2, 9}) == ""


def test_the_same_text_decodes_relative_to_the_commit_it_is_given() -> None:
    assert decode_done(1_000, "0-1") == {1_000, 1_001}
    assert decode_done(0, "0-1") == {0, 1}


def test_large_offsets_round_trip() -> None:
    commit = 9_876_543_210_123
    done = {commit + 1, commit + 2, commit + 1_000_000}
    assert decode_done(commit, encode_done(commit, done)) == done


def test_encoding_does_not_change_the_callers_set() -> None:
    done = {1, 5, 6}
    encode_done(3, done)
    assert done == {1, 5, 6}


def test_an_exact_fit_is_kept_whole() -> None:
    done = exact_fit(0)
    text = encode_done(0, done)
    assert len(text) == MAX_METADATA_CHARS
    assert decode_done(0, text) == done


# -- the size bound ----------------------------------------------------------------------


def test_one_range_more_than_fits_is_cut_and_stays_a_subset() -> None:
    done = exact_fit(0) | {1_002}  # one more range, ",1002-1002", past the limit
    text = encode_done(0, done)
    assert len(text) <= MAX_METADATA_CHARS
    assert {r for r in range(100, 848, 2)} <= decode_done(0, text) < done


def test_one_range_more_than_fits_drops_only_that_range() -> None:
    done = exact_fit(0) | {1_002}  # one more range, ",1002-1002", past the limit
    text = encode_done(0, done)
    assert len(text) <= MAX_METADATA_CHARS
    assert decode_done(0, text) == done - {1_002}


def test_a_last_range_too_long_to_fit_is_dropped() -> None:
    fits = exact_fit(0)
    # Widen the last run so its end needs one more digit ("848-10000"): 1 character over.
    done = fits | set(range(1_001, 10_001))
    assert len(full_ranges(0, done)) == MAX_METADATA_CHARS + 1
    text = encode_done(0, done)
    assert len(text) <= MAX_METADATA_CHARS
    decoded = decode_done(0, text)
    assert decoded == {r for r in range(100, 848, 2)}  # every whole range before it


def test_a_very_fragmented_set_is_cut_but_stays_under_the_limit() -> None:
    commit = 7
    done = {commit + 3 * i for i in range(5_000)}  # 5000 singletons, ~60 KB uncut
    text = encode_done(commit, done)
    assert 0 < len(text) <= MAX_METADATA_CHARS
    decoded = decode_done(commit, text)
    assert decoded and decoded < done
    assert len(text.encode()) < 4096  # Kafka's default offset.metadata.max.bytes


def test_the_cut_keeps_the_lowest_offsets() -> None:
    """The restart then skips the oldest finished offsets, with no hole among them."""
    done = {2 * i for i in range(2_000)}
    decoded = decode_done(0, encode_done(0, done))
    assert decoded == {o for o in done if o <= max(decoded)}


def test_a_single_range_too_long_to_fit_gives_nothing() -> None:
    huge = 10 ** (MAX_METADATA_CHARS - 1)  # relative offsets with 3000 digits
    done = {huge, huge + 1}
    assert encode_done(0, done) == ""


# -- unreadable metadata -----------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        "garbage",
        "1",
        "1-",
        "-1",
        "-1-3",
        "a-b",
        "1-2-3",
        "1-2,x",
        "1-2,3",
        " 1-2",
        "1-2 ",
        "+1-2",
        "1.0-2",
        "0x1-0x2",
        "1_0-2",
        '{"done": [1, 2]}',
    ],
)
def test_unreadable_metadata_is_nothing_to_skip(metadata: str) -> None:
    assert decode_done(100, metadata) == set()


def test_empty_parts_are_ignored() -> None:
    assert decode_done(10, ",0-1,,") == {10, 11}


@pytest.mark.parametrize("metadata", ["\u00b2-3", "0-\u00b3", "\u2460-\u2461", "0-1,\u00b9-2"])
def test_unicode_digits_int_cannot_read_are_nothing_to_skip(metadata: str) -> None:
    assert decode_done(0, metadata) == set()


@settings(max_examples=300, deadline=None)
@given(commit=st.integers(0, 10**12), metadata=st.text(alphabet="0123456789-,x ", max_size=40))
def test_decoding_ascii_text_never_raises_and_never_goes_below_the_commit(
    commit: int, metadata: str
) -> None:
    decoded = decode_done(commit, metadata)
    assert all(o >= commit for o in decoded)


# -- properties --------------------------------------------------------------------------


@st.composite
def finished_offsets(draw: st.DrawFn) -> tuple[int, set[int]]:
    """A commit point and finished offsets: runs separated by gaps (small or huge, so both
    many short ranges and long numbers occur), plus some offsets below the commit."""
    commit = draw(st.integers(0, 10**12))
    runs = draw(
        st.lists(
            st.tuples(st.one_of(st.integers(1, 5), st.integers(1, 10**9)), st.integers(1, 4)),
            max_size=700,
        )
    )
    done: set[int] = set()
    offset = commit - draw(st.integers(0, 3))
    for gap, length in runs:
        done.update(range(offset, offset + length))
        offset += length + gap
    below = draw(st.sets(st.integers(1, 50), max_size=5))
    done |= {commit - b for b in below}
    return commit, done


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=finished_offsets())
@example(case=(0, set()))
@example(case=(0, {3 * i for i in range(2_000)}))
def test_encoding_is_bounded_and_decodes_to_a_subset_of_what_was_done(
    case: tuple[int, set[int]],
) -> None:
    commit, done = case
    text = encode_done(commit, done)
    assert len(text) <= MAX_METADATA_CHARS
    decoded = decode_done(commit, text)
    expected = above(commit, done)
    assert decoded <= expected  # never an offset that was not done
    if len(full_ranges(commit, done)) <= MAX_METADATA_CHARS:
        assert decoded == expected  # whatever fits round-trips exactly
        assert text == full_ranges(commit, done)
    else:
        missing = expected - decoded
        assert missing
        assert all(o < min(missing) for o in decoded)  # cut from the top, no holes


@pytest.mark.parametrize("metadata", ["0-99999999999", "0-999999,1000000-1999999", "5-3"])
def test_ranges_no_commit_could_hold_are_nothing_to_skip(metadata: str) -> None:
    """Metadata naming more offsets than delivery ever has unfinished (or a backwards range)
    is not trusted: nothing is skipped, and nothing huge is built in memory."""
    assert decode_done(0, metadata) == set()
