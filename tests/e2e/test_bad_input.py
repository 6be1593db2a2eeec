"""Bad input, property-based: malformed records mixed with valid ones. Each malformed record
becomes a dead letter with its reason; each valid one is delivered; the stream never stops."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from tests.support.jobs import apply_jobs, triggers_job
from tests.support.kafka_io import produce, read_json
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=8)
)
malformed = st.one_of(
    st.binary(max_size=40).filter(lambda b: not b.strip().startswith(b"{")),
    st.builds(orjson.dumps, st.lists(json_scalars, max_size=3)),
    st.builds(
        lambda d: orjson.dumps({"data": d}),
        st.dictionaries(st.text(max_size=5), json_scalars, max_size=3),
    ),
    st.builds(
        lambda i: orjson.dumps({"id": i, "data": {}}),
        st.one_of(st.none(), st.just(""), st.booleans(), st.floats()),
    ),
    st.builds(
        lambda d: orjson.dumps({"id": "x", "data": d}),
        st.one_of(json_scalars, st.lists(json_scalars, max_size=2)),
    ),
    st.builds(
        lambda kind: orjson.dumps(
            {"id": "x", "data": {}, "segment_events": [{"slug": "newsletter", "event": kind}]}
        ),
        st.text(max_size=6).filter(lambda k: k not in ("enter", "exit")),
    ),
)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bad=st.lists(malformed, min_size=1, max_size=12), valid_count=st.integers(1, 8))
async def test_malformed_records_become_dead_letters_and_valid_ones_are_delivered(
    bad: list[bytes],
    valid_count: int,
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    await check(bad, valid_count, test_env, test_settings, receiver, worker, tmp_path)


async def check(
    bad: list[bytes],
    valid_count: int,
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    path = f"/bad-{tag}"
    job = triggers_job(receiver.url(path))
    await apply_jobs(test_env, tmp_path, worker, job)
    valid = [
        orjson.dumps(
            {
                "id": f"{tag}-{i}",
                "data": {"i": i},
                "segment_events": [{"slug": "newsletter", "event": "enter"}],
            }
        )
        for i in range(valid_count)
    ]
    mixed: list[bytes] = []
    for i in range(max(len(bad), len(valid))):
        mixed.extend(bad[i : i + 1])
        mixed.extend(valid[i : i + 1])
    key = tag.encode()
    await produce(test_settings, test_settings.input_topic, [(key, v) for v in mixed])

    async def letters() -> list[Any]:
        rows = await read_json(test_settings, test_settings.deadletter_topic)
        return [doc for k, doc in rows if k == tag]

    with contextlib.suppress(AssertionError):  # the assertions below say what is missing
        await eventually(
            letters,
            lambda dead: len(dead) >= len(bad) and len(receiver.for_path(path)) >= valid_count,
            wait_s=60,
            interval_s=0.3,
        )
    dead = await letters()
    assert len(dead) == len(bad)
    assert all(doc["reason"].startswith("invalid input record: ") for doc in dead)
    assert sorted(r.json()["id"] for r in receiver.for_path(path)) == sorted(
        f"{tag}-{i}" for i in range(valid_count)
    )
