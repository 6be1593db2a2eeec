"""Local snapshots of the router's state (issue 13, item 2): what is written is read back
exactly, and every file that is not a usable snapshot of this partition is refused with a
reason (the worker then reads the changelog instead)."""

from __future__ import annotations

import hashlib
import marshal
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.state_snapshot import MAX_AGE_S, SnapshotUnusable, decode, encode
from app.settings import load_settings
from app.transport.state_store import StateStore

NOW = 1_800_000_000.0
TOPIC = "app-user-state-changelog"


@given(
    entries=st.dictionaries(st.binary(max_size=40), st.binary(max_size=200), max_size=200),
    offset=st.integers(min_value=0, max_value=2**62),
)
def test_a_snapshot_reads_back_as_written(entries: dict[bytes, bytes], offset: int) -> None:
    snap = decode(encode(TOPIC, 3, offset, entries, NOW), TOPIC, 3, NOW + 60)
    assert snap.entries == entries
    assert snap.offset == offset
    assert snap.written_at == NOW


def refused(data: bytes, partition: int = 3, now: float = NOW) -> str:
    with pytest.raises(SnapshotUnusable) as info:
        decode(data, TOPIC, partition, now)
    return str(info.value)


def test_a_snapshot_of_another_partition_or_topic_is_refused() -> None:
    data = encode(TOPIC, 3, 10, {b"u": b"v"}, NOW)
    assert "not app-user-state-changelog[4]" in refused(data, partition=4)
    with pytest.raises(SnapshotUnusable, match="made for"):
        decode(data, "other-changelog", 3, NOW)


def test_an_old_snapshot_is_refused_because_compaction_may_have_dropped_deletions() -> None:
    data = encode(TOPIC, 3, 10, {b"u": b"v"}, NOW)
    assert decode(data, TOPIC, 3, NOW + MAX_AGE_S - 1).offset == 10
    assert "h ago" in refused(data, now=NOW + MAX_AGE_S + 1)
    assert "h ago" in refused(data, now=NOW - 3600)  # from the future: a clock went wrong


def test_damaged_files_are_refused() -> None:
    data = encode(TOPIC, 3, 10, {b"user-%d" % i: b"x" * 50 for i in range(100)}, NOW)
    assert "checksum" in refused(data[:-7])  # truncated
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    assert "checksum" in refused(bytes(flipped))
    assert "no header line" in refused(b"garbage")
    assert "not JSON" in refused(b"{nope\n" + data)
    assert "format" in refused(b"[1, 2]\n")


def forged(payload: bytes, **header: object) -> bytes:
    doc = {
        "format": 1,
        "topic": TOPIC,
        "partition": 3,
        "offset": 10,
        "written_at": NOW,
        "entries": 1,
        "sha256": hashlib.sha256(payload).hexdigest(),
        **header,
    }
    return orjson.dumps(doc) + b"\n" + payload


def test_a_payload_that_is_not_a_map_of_bytes_is_refused_even_with_a_valid_checksum() -> None:
    assert "bytes" in refused(forged(marshal.dumps({b"u": "text"})))
    assert "bytes" in refused(forged(marshal.dumps({1: b"v"})))
    assert "not the map" in refused(forged(marshal.dumps([b"u", b"v"])))
    assert "not the map" in refused(forged(marshal.dumps({b"u": b"v"}), entries=2))
    assert "unreadable" in refused(forged(b"\xff\x00\x01"))
    assert "valid offset" in refused(forged(marshal.dumps({b"u": b"v"}), offset=-1))


def test_snapshots_of_partitions_no_longer_served_are_removed(tmp_path: Path) -> None:
    """They may hold users erased since (README, "Deleting users")."""
    store = StateStore(load_settings(data_dir=tmp_path), "app-user-state-changelog")
    store.snapshot_dir.mkdir(parents=True)
    for name in ("0.snapshot", "1.snapshot", "7.snapshot", "notes.txt"):
        (store.snapshot_dir / name).write_bytes(b"x")
    assert store._remove_other_snapshots({0, 1}) == [7]
    assert sorted(p.name for p in store.snapshot_dir.iterdir()) == [
        "0.snapshot",
        "1.snapshot",
        "notes.txt",
    ]
