"""The router on the real broker: bad input becomes a dead letter, the stream goes on."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import yaml

from app.settings import Settings
from tests.support.kafka_io import produce, read_json, wait_for_records
from tests.support.processes import WorkerProcess, run_cli


def test_malformed_record_is_dead_lettered_and_next_record_routed(
    test_env: dict[str, str], test_settings: Settings, worker: WorkerProcess, tmp_path: Path
) -> None:
    job_id = uuid.uuid4().hex
    job = {
        "id": job_id,
        "type": "audience_triggers",
        "label": "router test",
        "audiences": ["newsletter"],
        "webhook_url": "https://hooks.example.com/in",
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    assert run_cli(test_env, "jobs", "apply", str(tmp_path / "job.yaml")).code == 0

    valid = {
        "id": "user-1",
        "data": {"email": "a@example.com"},
        "segment_events": [{"id": "s1", "slug": "newsletter", "event": "enter"}],
    }
    topic = test_settings.input_topic
    asyncio.run(
        produce(
            test_settings,
            topic,
            [
                (b"user-0", b"{not json"),
                (b"user-0", orjson.dumps({"id": "user-0"})),  # no data
                (b"user-1", orjson.dumps(valid)),
            ],
        )
    )

    queue = asyncio.run(wait_for_records(test_settings, f"webhook-queue-{job_id}", 1))
    assert queue[0][0] == "user-1"
    assert queue[0][1]["user"]["segment_events"] == valid["segment_events"]

    dead = asyncio.run(wait_for_records(test_settings, test_settings.deadletter_topic, 2))
    reasons = sorted(doc["reason"] for _, doc in dead)
    assert reasons[0].startswith("invalid input record: data: required object")
    assert reasons[1].startswith("invalid input record: value: not valid JSON")
    assert {doc["event"] for _, doc in dead} == {"{not json", '{"id":"user-0"}'}
    assert all(doc["topic"] == topic and doc["job_id"] is None for _, doc in dead)

    # The membership state was written to the router's changelog.
    changelog = f"{test_settings.app_id}-user-state-changelog"
    states = asyncio.run(read_json(test_settings, changelog))
    user_1 = [doc for key, doc in states if key == "user-1"]
    assert user_1[-1]["audiences"] == {"newsletter": "s1"}
    partition, offset = user_1[-1]["last"]  # where its latest input record is (for backfills)
    assert 0 <= partition < 2 and offset >= 0
