"""`pair_answer`: pairing a user enrichment endpoint's 2xx answer with the users it enriches.

Unbatched: the whole answer belongs to the request's one user. Batched: the answer must be
a JSON array with one item per user, paired by position. Anything else (too large, not
JSON, not an array, the wrong length) is UnusableAnswer -- the module's documented error,
which the caller turns into a dead letter -- never another exception, whatever the body.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.domain.enrichment import MAX_ANSWER_BYTES, UnusableAnswer, pair_answer
from app.domain.jobs import JobConfig, parse_job_config
from app.domain.queue_record import QueuedEvent


def job(*, batch: bool) -> JobConfig:
    return parse_job_config(
        {
            "id": "enrich-1",
            "type": "user_enrichment",
            "label": "Enrich",
            "audiences": ["vip"],
            "webhook_url": "https://hooks.example.com/enrich",
            "export_fields": ["email"],
            "batch": batch,
        }
    )


UNBATCHED = job(batch=False)
BATCHED = job(batch=True)


def event(user: str) -> QueuedEvent:
    return QueuedEvent(f"ev-{user}", user, {"email": f"{user}@x"}, {}, [], None, 0)


def users(n: int) -> list[QueuedEvent]:
    return [event(f"u{i}") for i in range(n)]


# -- unbatched ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (b'{"score": 3}', {"score": 3}),
        (b"[1, 2, 3]", [1, 2, 3]),  # an array is one user's answer when unbatched
        (b"[]", []),
        (b"null", None),
        (b"true", True),
        (b"0", 0),
        (b'"text"', "text"),
        (b'  {"a": "\\u00e9"}\n', {"a": "é"}),
    ],
)
def test_an_unbatched_answer_is_the_one_users_whole_answer(body: bytes, answer: Any) -> None:
    ev = event("u1")
    assert pair_answer(UNBATCHED, [ev], body) == [(ev, answer)]


# -- batched -----------------------------------------------------------------------------


def test_batched_items_are_paired_by_position() -> None:
    evs = users(3)
    got = pair_answer(BATCHED, evs, b'[{"n": 0}, null, "two"]')
    assert got == [(evs[0], {"n": 0}), (evs[1], None), (evs[2], "two")]
    assert [e.user_id for e, _ in got] == ["u0", "u1", "u2"]


def test_a_batched_answer_of_one_item() -> None:
    [ev] = users(1)
    assert pair_answer(BATCHED, [ev], b"[[1, 2]]") == [(ev, [1, 2])]


def test_an_empty_batch_takes_an_empty_array() -> None:
    assert pair_answer(BATCHED, [], b"[]") == []


@pytest.mark.parametrize(
    ("body", "n", "message"),
    [
        (b'{"0": 1}', 1, "must be a JSON array, got dict"),
        (b'"abc"', 1, "must be a JSON array, got str"),
        (b"null", 2, "must be a JSON array, got NoneType"),
        (b"3", 1, "must be a JSON array, got int"),
        (b"[1, 2]", 3, "has 2 items for 3 users"),
        (b"[1, 2, 3, 4]", 3, "has 4 items for 3 users"),
        (b"[]", 1, "has 0 items for 1 users"),
        (b"[[1, 2, 3]]", 3, "has 1 items for 3 users"),  # not flattened
    ],
)
def test_a_batched_answer_of_the_wrong_shape_is_unusable(body: bytes, n: int, message: str) -> None:
    with pytest.raises(UnusableAnswer, match=message):
        pair_answer(BATCHED, users(n), body)


# -- what is not an answer ---------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not json",
        b"{",
        b"[1, 2",
        b"{'single': 'quotes'}",
        b"[1, 2,]",
        b"NaN",
        b"Infinity",
        b"\xff\xfe",
        b'"\xc3\x28"',  # invalid UTF-8 inside a string
        b'"\\ud800"',  # a lone surrogate
        b"[1] [2]",  # two documents
        b"\x00",
        b"[" * 2_000 + b"]" * 2_000,  # deeper than orjson parses
    ],
)
def test_a_body_that_is_not_json_is_unusable(body: bytes, batch: bool) -> None:
    with pytest.raises(UnusableAnswer, match="not JSON"):
        pair_answer(job(batch=batch), users(1), body)


@pytest.mark.parametrize("batch", [False, True])
def test_an_answer_over_the_size_limit_is_unusable_even_if_valid(batch: bool) -> None:
    body = b'["' + b"x" * (MAX_ANSWER_BYTES - 3) + b'"]'
    assert len(body) == MAX_ANSWER_BYTES + 1
    with pytest.raises(UnusableAnswer, match="larger than"):
        pair_answer(job(batch=batch), users(1), body)


def test_an_answer_of_exactly_the_size_limit_is_accepted() -> None:
    body = b'["' + b"x" * (MAX_ANSWER_BYTES - 4) + b'"]'
    assert len(body) == MAX_ANSWER_BYTES
    [(_, answer)] = pair_answer(BATCHED, users(1), body)
    assert answer == "x" * (MAX_ANSWER_BYTES - 4)


def test_unusable_answer_is_a_value_error() -> None:
    assert issubclass(UnusableAnswer, ValueError)


# -- properties: hostile bodies ----------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)


def mangled(doc: bytes, cut: int, junk: bytes) -> bytes:
    """`doc` cut short, with bytes spliced in: almost JSON."""
    at = cut % (len(doc) + 1)
    return doc[:at] + junk + doc[at:]


hostile_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")),
    json_values.map(orjson.dumps),
    st.builds(mangled, json_values.map(orjson.dumps), st.integers(0, 500), st.binary(max_size=4)),
    st.integers(1, 3_000).map(lambda d: b"[" * d + b"]" * d),
    st.integers(1, 3_000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
    st.text(alphabet='[]{}",:0123456789eE.-+ntrufals\\', max_size=60).map(str.encode),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=hostile_bodies, batch=st.booleans(), n=st.integers(1, 4))
@example(body=b"[1e999]", batch=True, n=1)
@example(body=b"18446744073709551616", batch=False, n=1)
@example(body=b"-9223372036854775809", batch=False, n=1)
@example(body=b'{"a": 1, "a": 2}', batch=False, n=1)
@example(body=b"\xef\xbb\xbf[1]", batch=True, n=1)  # UTF-8 byte order mark
def test_only_unusable_answer_is_ever_raised(body: bytes, batch: bool, n: int) -> None:
    evs = users(n)
    try:
        pairs = pair_answer(job(batch=batch), evs, body)
    except UnusableAnswer:
        return
    assert len(body) <= MAX_ANSWER_BYTES
    answer = orjson.loads(body)
    if batch:
        assert isinstance(answer, list) and len(answer) == n
        assert pairs == list(zip(evs, answer, strict=True))
    else:
        assert pairs == [(evs[0], answer)]


@settings(max_examples=200, deadline=None)
@given(items=st.lists(json_values, min_size=1, max_size=6))
def test_any_array_of_the_right_length_pairs_every_user_with_its_item(items: list[Any]) -> None:
    evs = users(len(items))
    pairs = pair_answer(BATCHED, evs, orjson.dumps(items))
    assert [e for e, _ in pairs] == evs
    assert [a for _, a in pairs] == orjson.loads(orjson.dumps(items))


@settings(max_examples=200, deadline=None)
@given(items=st.lists(json_values, max_size=6), n=st.integers(1, 6))
def test_any_array_of_another_length_is_unusable(items: list[Any], n: int) -> None:
    if len(items) == n:
        items = [*items, None]
    with pytest.raises(UnusableAnswer, match=f"has {len(items)} items for {n} users"):
        pair_answer(BATCHED, users(n), orjson.dumps(items))
