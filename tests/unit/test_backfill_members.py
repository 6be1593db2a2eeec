"""Backfill inputs: `latest_states` (the compacted view of a changelog partition: the last
value per key, tombstones applied) and `current_members` (the users in any of a job's
audiences, each once, under the first of the job's audiences they are in; keys starting
with NUL are markers, such as baseline markers, and never users).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.backfill import Member, current_members, latest_states
from app.domain.baselines import marker_key, marker_value
from app.domain.jobs import JobConfig, parse_job_config
from app.domain.routing import UserState


def job(audiences: list[str], **overrides: Any) -> JobConfig:
    doc: dict[str, Any] = {
        "id": "job1",
        "type": "audience_triggers",
        "label": "L",
        "audiences": audiences,
        "webhook_url": "https://hooks.example.com/in",
    }
    doc.update(overrides)
    return parse_job_config(doc)


def state(audiences: dict[str, str], last: tuple[int, int] | None = (0, 1)) -> bytes:
    return UserState(audiences=audiences, last=last).to_bytes()


# -- latest_states -----------------------------------------------------------------------


def test_no_records_no_states() -> None:
    assert latest_states([]) == {}


def test_the_last_value_of_a_key_wins() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"a", b"1"),
        (b"b", b"x"),
        (b"a", b"2"),
        (b"a", b"3"),
    ]
    assert latest_states(records) == {b"a": b"3", b"b": b"x"}


def test_a_tombstone_deletes_the_key() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [(b"a", b"1"), (b"b", b"2"), (b"a", None)]
    assert latest_states(records) == {b"b": b"2"}


def test_a_value_after_a_tombstone_brings_the_key_back() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [(b"a", b"1"), (b"a", None), (b"a", b"4")]
    assert latest_states(records) == {b"a": b"4"}


def test_a_tombstone_for_an_unknown_key_is_harmless() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [(b"ghost", None), (b"a", b"1")]
    assert latest_states(records) == {b"a": b"1"}


def test_records_without_a_key_are_ignored() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [
        (None, b"orphan"),
        (b"a", b"1"),
        (None, None),
    ]
    assert latest_states(records) == {b"a": b"1"}


def test_an_empty_value_is_a_value_not_a_tombstone() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [(b"a", b"1"), (b"a", b"")]
    assert latest_states(records) == {b"a": b""}


def test_keys_are_compared_as_bytes() -> None:
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"u", b"1"),
        (b"U", b"2"),
        (b"u ", b"3"),
        (b"\x00u", b"4"),
    ]
    assert len(latest_states(records)) == 4


keys = st.sampled_from([b"a", b"b", b"c", b"\x00baseline:j", b""]) | st.none()
values = st.none() | st.binary(max_size=3)


@settings(max_examples=300, deadline=None)
@given(records=st.lists(st.tuples(keys, values), max_size=30))
def test_each_key_maps_to_its_last_value_unless_its_last_record_is_a_tombstone(
    records: list[tuple[bytes | None, bytes | None]],
) -> None:
    view = latest_states(records)
    last: dict[bytes, bytes | None] = {}
    for key, value in records:
        if key is not None:
            last[key] = value
    assert set(view) == {k for k, v in last.items() if v is not None}
    for key, value in view.items():
        assert value == last[key]


@settings(max_examples=200, deadline=None)
@given(
    first=st.lists(st.tuples(keys, values), max_size=15),
    second=st.lists(st.tuples(keys, values), max_size=15),
)
def test_compacting_a_prefix_first_gives_the_same_view(
    first: list[tuple[bytes | None, bytes | None]],
    second: list[tuple[bytes | None, bytes | None]],
) -> None:
    """Like a compacted log: reading the compacted head followed by the rest is the same."""
    head: list[tuple[bytes | None, bytes | None]] = list(latest_states(first).items())
    assert latest_states(head + second) == latest_states(first + second)


# -- current_members ---------------------------------------------------------------------


def test_a_user_in_the_audience_is_a_member_with_its_segment_and_pointer() -> None:
    states = {b"u1": state({"vip": "seg-9"}, (3, 42))}
    assert current_members(states, job(["vip"])) == [Member("u1", "vip", "seg-9", (3, 42))]


def test_a_member_without_a_pointer_keeps_none() -> None:
    states = {b"u1": state({"vip": "s"}, None)}
    assert current_members(states, job(["vip"])) == [Member("u1", "vip", "s", None)]


def test_users_outside_the_jobs_audiences_are_not_members() -> None:
    states = {
        b"in": state({"vip": "s1"}),
        b"other": state({"news": "s2"}),
        b"none": state({}),
    }
    assert [m.user_id for m in current_members(states, job(["vip"]))] == ["in"]


def test_a_user_in_several_audiences_is_one_member_under_the_jobs_first() -> None:
    # The state lists "news" first; the job lists "vip" first: the job's order decides.
    states = {b"u": state({"news": "s-news", "vip": "s-vip"})}
    [member] = current_members(states, job(["vip", "news"]))
    assert (member.slug, member.segment_id) == ("vip", "s-vip")
    [member] = current_members(states, job(["news", "vip"]))
    assert (member.slug, member.segment_id) == ("news", "s-news")


def test_a_later_audience_of_the_job_still_counts() -> None:
    states = {b"u": state({"news": "s"})}
    assert [m.slug for m in current_members(states, job(["vip", "churn", "news"]))] == ["news"]


def test_markers_are_never_members() -> None:
    states = {
        marker_key("job1"): marker_value(job(["vip"], trigger_fields=["plan"])),
        b"u": state({"vip": "s"}),
    }
    assert [m.user_id for m in current_members(states, job(["vip"]))] == ["u"]


def test_a_nul_key_is_skipped_even_if_its_value_looks_like_a_member() -> None:
    states = {
        b"\x00": state({"vip": "s"}),
        b"\x00baseline:job1": state({"vip": "s"}),
        b"\x00anything-else": state({"vip": "s"}),
    }
    assert current_members(states, job(["vip"])) == []


def test_a_nul_key_is_skipped_before_its_value_is_read() -> None:
    states = {b"\x00marker": b"not json at all", b"u": state({"vip": "s"})}
    assert [m.user_id for m in current_members(states, job(["vip"]))] == ["u"]


def test_a_nul_inside_a_key_does_not_make_it_a_marker() -> None:
    states = {b"u\x00x": state({"vip": "s"})}
    assert [m.user_id for m in current_members(states, job(["vip"]))] == ["u\x00x"]


def test_an_empty_state_is_not_a_member() -> None:
    assert current_members({b"u": b""}, job(["vip"])) == []


def test_user_ids_are_decoded_from_utf8_keys() -> None:
    states = {"zoë-😀".encode(): state({"vip": "s"})}
    assert [m.user_id for m in current_members(states, job(["vip"]))] == ["zoë-😀"]


def test_members_come_in_the_order_of_the_states() -> None:
    states = {f"u{i}".encode(): state({"vip": "s"}) for i in (3, 1, 2)}
    assert [m.user_id for m in current_members(states, job(["vip"]))] == ["u3", "u1", "u2"]


def test_the_members_of_a_compacted_changelog() -> None:
    """End to end through both: a user who left, one deleted, one re-added, a marker."""
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"left", state({"vip": "s"})),
        (b"deleted", state({"vip": "s"})),
        (b"stays", state({"vip": "s"}, (0, 3))),
        (b"left", state({})),
        (b"deleted", None),
        (marker_key("job1"), b'{"job_id":"job1","tag":"t"}'),
        (b"back", state({"vip": "s"})),
        (b"back", None),
        (b"back", state({"vip": "s2"}, (1, 8))),
    ]
    members = current_members(latest_states(records), job(["vip"]))
    assert members == [Member("stays", "vip", "s", (0, 3)), Member("back", "vip", "s2", (1, 8))]


slugs = st.sampled_from(["vip", "news", "churn", "beta"])
user_keys = st.text(alphabet="abc\x00é", min_size=1, max_size=4).map(str.encode)
user_states = st.dictionaries(slugs, st.text(alphabet="s0123", min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(
    stored=st.dictionaries(user_keys, user_states, max_size=12),
    job_audiences=st.lists(slugs, min_size=1, max_size=4, unique=True),
)
def test_members_are_exactly_the_users_in_an_audience_each_once_under_the_first(
    stored: dict[bytes, dict[str, str]], job_audiences: list[str]
) -> None:
    states = {key: state(auds) for key, auds in stored.items()}
    members = current_members(states, job(job_audiences))
    expected_users = [
        key.decode()
        for key, auds in stored.items()
        if not key.startswith(b"\x00") and any(slug in auds for slug in job_audiences)
    ]
    assert [m.user_id for m in members] == expected_users
    for m in members:
        auds = stored[m.user_id.encode()]
        first = next(slug for slug in job_audiences if slug in auds)
        assert (m.slug, m.segment_id, m.last) == (first, auds[first], (0, 1))
