"""What a compacted topic (or partition) says: the last value per key, deletes applied.

The one home for reading a compacted topic's view: `transport.kafka.read_compacted` reads
the records, this folds them.
"""

from __future__ import annotations

from collections.abc import Iterable


def latest_values(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[bytes, bytes]:
    """The last value per key, in the order given; a record without a value deletes its key,
    a record without a key is ignored."""
    latest: dict[bytes, bytes] = {}
    for key, value in records:
        if key is None:
            continue
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    return latest
