"""The CLI against the real broker: topics, jobs and authorizations round-trip through Kafka."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import orjson
import yaml
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.domain.status_summary import NO_LIVE_WORKER
from app.settings import Settings
from app.transport.kafka_admin import admin_client
from tests.support.kafka_io import read_json
from tests.support.processes import run_cli


def write_yaml(path: Path, doc: object) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def triggers_job(job_id: str) -> dict[str, object]:
    return {
        "id": job_id,
        "type": "audience_triggers",
        "label": "Round trip",
        "audiences": ["newsletter"],
        "webhook_url": "https://hooks.example.com/in",
        "trigger_fields": ["email"],
    }


def test_topics_create_is_idempotent(test_env: dict[str, str]) -> None:
    first = run_cli(test_env, "topics", "create")
    assert first.code == 0, first.err
    assert f"created {test_env['WEBHOOKS_INPUT_TOPIC']} (2 partitions, delete)" in first.out
    assert f"created {test_env['WEBHOOKS_JOBS_TOPIC']} (1 partitions, compact)" in first.out
    second = run_cli(test_env, "topics", "create")
    assert second.code == 0, second.err
    assert "0 created, 12 already existed" in second.out
    assert "set retention.ms" not in second.out


def test_topics_create_sets_the_dead_letter_retention_on_existing_topics(
    test_env: dict[str, str], test_settings: Settings
) -> None:
    assert run_cli(test_env, "topics", "create").code == 0
    two_days = {**test_env, "WEBHOOKS_DEADLETTER_RETENTION_DAYS": "2"}
    changed = run_cli(two_days, "topics", "create")
    assert changed.code == 0, changed.err
    dead = test_env["WEBHOOKS_DEADLETTER_TOPIC"]
    assert f"set retention.ms of topic {dead}: 604800000 -> 172800000" in changed.out
    erasures = f"{test_env['WEBHOOKS_APP_ID']}-erasures"
    assert f"set retention.ms of topic {erasures}: 604800000 -> 172800000" in changed.out
    configs = asyncio.run(topic_configs(test_settings, dead))
    assert configs["retention.ms"] == "172800000" and configs["cleanup.policy"] == "delete"
    configs = asyncio.run(topic_configs(test_settings, erasures))
    assert configs["cleanup.policy"] == "compact,delete"  # its other own configs are kept
    again = run_cli(two_days, "topics", "create")
    assert "set retention.ms" not in again.out, again.out


async def topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    async with admin_client(settings) as admin:
        (answer,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    ((_code, _msg, _type, _name, entries),) = answer.resources
    return {entry[0]: entry[1] for entry in entries}


def test_job_round_trips_through_cli_and_topic(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    assert run_cli(test_env, "topics", "create").code == 0
    job_id = uuid.uuid4().hex
    applied = run_cli(
        test_env, "jobs", "apply", str(write_yaml(tmp_path / "j.yaml", triggers_job(job_id)))
    )
    assert applied.code == 0, applied.err
    assert f"created job {job_id}" in applied.out

    listed = run_cli(test_env, "jobs", "list")
    assert job_id in listed.out and "running" in listed.out
    # No worker runs here: the real state says so, the wanted one is `running`.
    assert NO_LIVE_WORKER in listed.out

    shown = orjson.loads(run_cli(test_env, "jobs", "show", job_id).out)
    assert shown["state"] == NO_LIVE_WORKER and shown["wanted"] == "running"
    assert shown["workers"] == {}
    config = shown["config"]
    assert config["audiences"] == ["newsletter"]
    assert config["batch_size"] == 10 and config["worker_count"] == 5
    assert config["cloudevents_source"] == f"/work/{job_id}"
    assert "stream" not in config  # enrichment-only field is not part of a triggers job

    records = asyncio.run(read_json(test_settings, test_settings.jobs_topic))
    assert [key for key, _ in records] == [job_id]
    assert records[0][1]["trigger_fields"] == ["email"]

    assert run_cli(test_env, "jobs", "stop", job_id).code == 0
    assert orjson.loads(run_cli(test_env, "jobs", "show", job_id).out)["wanted"] == "stopped"
    # Applying again keeps the stopped state: a config update is not a resume.
    assert "updated job" in run_cli(test_env, "jobs", "apply", str(tmp_path / "j.yaml")).out
    assert orjson.loads(run_cli(test_env, "jobs", "show", job_id).out)["wanted"] == "stopped"
    assert run_cli(test_env, "jobs", "resume", job_id).code == 0
    assert orjson.loads(run_cli(test_env, "jobs", "show", job_id).out)["wanted"] == "running"


def test_invalid_job_exits_2_names_each_field_and_writes_nothing(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    assert run_cli(test_env, "topics", "create").code == 0
    bad = {
        "type": "audience_triggers",
        "label": "bad",
        "audiences": ["a"],
        "webhook_url": "http://plain.example.com",
        "worker_count": 21,
        "stream": "x",
        "colour": "blue",
    }
    result = run_cli(test_env, "jobs", "apply", str(write_yaml(tmp_path / "bad.yaml", bad)))
    assert result.code == 2
    for field in ("webhook_url", "worker_count", "stream", "colour"):
        assert f"- {field}:" in result.err, result.err
    assert "Traceback" not in result.err
    assert asyncio.run(read_json(test_settings, test_settings.jobs_topic)) == []


def test_job_naming_unknown_authorization_is_refused(
    test_env: dict[str, str], tmp_path: Path
) -> None:
    assert run_cli(test_env, "topics", "create").code == 0
    job = {**triggers_job(uuid.uuid4().hex), "authorization": "nope"}
    result = run_cli(test_env, "jobs", "apply", str(write_yaml(tmp_path / "j.yaml", job)))
    assert result.code == 2
    assert "- authorization: no authorization 'nope'" in result.err


def test_unreachable_broker_is_a_clear_error(test_env: dict[str, str]) -> None:
    env = {**test_env, "WEBHOOKS_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    result = run_cli(env, "jobs", "list")
    assert result.code == 1
    assert "cannot connect to Kafka: nothing listens at 127.0.0.1:1: is the broker running?" in (
        result.err
    )
    assert "Traceback" not in result.err


def test_authorization_secrets_are_encrypted_and_listed_redacted(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    assert run_cli(test_env, "topics", "create").code == 0
    auth = {
        "id": "crm",
        "label": "CRM",
        "method": "headers",
        "headers": "Authorization: s3cr3t-header-value\nX-Team: growth",
        "params": "api_key=s3cr3t-param-value",
    }
    applied = run_cli(test_env, "auth", "apply", str(write_yaml(tmp_path / "a.yaml", auth)))
    assert applied.code == 0, applied.err
    listed = run_cli(test_env, "auth", "list")
    assert "Authorization: ***" in listed.out and "api_key=***" in listed.out
    assert "s3cr3t" not in listed.out
    raw = asyncio.run(read_json(test_settings, test_settings.authorizations_topic))
    assert "s3cr3t" not in orjson.dumps(raw).decode()

    no_key = {k: v for k, v in test_env.items() if k != "WEBHOOKS_SECRET_KEY"}
    refused = run_cli(no_key, "auth", "apply", str(tmp_path / "a.yaml"))
    assert refused.code == 2
    assert "WEBHOOKS_SECRET_KEY: not set" in refused.err
