"""Which broker coordinates a group: Kafka's `Utils.abs(groupId.hashCode()) % partitions`
of `__consumer_offsets`, computed here so a worker starting many jobs skips a lookup each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.transport.group_offsets import java_string_hash, offsets_partition


def test_java_string_hash_matches_java() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("é") == 233
    assert java_string_hash("\U0001f600") == 31 * 0xD83D + 0xDE00  # UTF-16 surrogates
    assert java_string_hash("polygenelubricants") == -(2**31)
    assert java_string_hash("audience-webhooks-delivery-job-1") == _java_reference(
        "audience-webhooks-delivery-job-1"
    )


def test_the_minimum_hash_maps_to_partition_zero_as_kafkas_utils_abs() -> None:
    assert offsets_partition("polygenelubricants", 50) == 0


@given(st.text(max_size=80), st.integers(1, 200))
def test_partition_is_in_range(group: str, partitions: int) -> None:
    assert 0 <= offsets_partition(group, partitions) < partitions


def _java_reference(text: str) -> int:
    """s[0]*31^(n-1) + ... + s[n-1], as the Java documentation defines it, in 32 bits."""
    n = len(text)
    total: int = sum(ord(c) * 31 ** (n - 1 - i) for i, c in enumerate(text)) % 2**32
    return total - 2**32 if total >= 2**31 else total
