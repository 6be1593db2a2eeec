"""Job log entries (issue 10, item 4): bounds, round trip, `--since`, hostile records."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.job_log import (
    MAX_EVENT_IDS,
    MAX_MESSAGE_CHARS,
    OUTSIDE_TEXT,
    entry,
    own_words,
    parse_entry,
    parse_since,
    without_answer,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()


def test_an_entry_is_bounded_and_reads_back() -> None:
    ids = [f"e{i}" for i in range(500)]
    e = entry("j1", "w1", "omitted", "x" * 10_000, NOW, status=400, events=500, event_ids=ids)
    assert len(e.message) == MAX_MESSAGE_CHARS
    assert e.details["event_ids"] == ids[:MAX_EVENT_IDS]
    assert e.details["events"] == 500
    back = parse_entry(e.to_bytes())
    assert back == e
    assert e.line().startswith("2026-11-29T12:00:00.000Z  w1  omitted")


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown job log kind"):
        entry("j1", "w1", "gossip", "m", NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - 90),
        ("10m", NOW - 600),
        ("2h", NOW - 7200),
        ("7d", NOW - 7 * 86400),
        ("1.5h", NOW - 5400),
        ("2026-11-29T11:00:00Z", NOW - 3600),
        ("2026-11-29T13:00:00+02:00", NOW - 3600),
    ],
)
def test_since_accepts_durations_and_rfc3339(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["yesterday", "10", "-5m", "2026-11-29T11:00:00", ""])
def test_since_refuses_what_it_cannot_read_naming_the_option(text: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(text, NOW)


@given(st.binary(max_size=300))
def test_parse_entry_never_raises(raw: bytes) -> None:
    parse_entry(raw)


@given(
    st.dictionaries(
        st.sampled_from(["job_id", "ts", "kind", "message", "worker_id", "x"]),
        st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=5),
            st.lists(st.booleans()),
        ),
    )
)
def test_parse_entry_never_raises_on_odd_json(doc: dict[str, object]) -> None:
    parse_entry(orjson.dumps(doc))


# -- no text from outside in the job log (issue 22: the log keeps no profile data) ----------

ANSWERS = st.text(min_size=1, max_size=60).filter(lambda t: t.strip() != "")


@given(answer=ANSWERS, status=st.integers(400, 599))
def test_a_receivers_answer_never_reaches_a_state_entry(answer: str, status: int) -> None:
    for prefix in (f"HTTP {status}", f"omitted: HTTP {status} is not retried"):
        assert without_answer(f"{prefix}: {answer}") == f"{prefix}: {OUTSIDE_TEXT}"


def test_reasons_in_the_services_own_words_are_kept() -> None:
    for reason in ("ClientConnectorError: connection refused", "the endpoint asked to wait"):
        assert without_answer(reason) == reason
        assert own_words(reason, ()) == reason
        assert own_words(reason, "") == reason


def test_own_words_takes_every_outside_piece_out() -> None:
    text = "body_template failed: alice@example.com is not valid (alice@example.com)"
    kept = own_words(text, ("alice@example.com is not valid (alice@example.com)",))
    assert "alice" not in kept and kept.startswith("body_template failed: ")
    assert "alice" not in own_words("x alice y alice", "alice")
