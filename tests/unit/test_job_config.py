"""Job config validation and defaults (contract section 5)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from app.domain.errors import ConfigError
from app.domain.jobs import JobConfig, parse_job_config
from app.domain.stored_job import StoredJob


def triggers(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "audience_triggers",
        "label": "Triggers",
        "audiences": ["vip"],
        "webhook_url": "https://hooks.example.com/in",
    }
    doc.update(overrides)
    return doc


def enrichment(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "user_enrichment",
        "label": "Enrichment",
        "audiences": ["vip"],
        "webhook_url": "https://enrich.example.com/in",
        "export_fields": ["email"],
    }
    doc.update(overrides)
    return doc


def refused_fields(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_job_config(doc)
    return [p.field for p in exc.value.problems]


def test_unknown_field_is_refused() -> None:
    assert refused_fields(triggers(colour="blue")) == ["colour"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("stream", "my_topic"), ("body_template", "{ a: 1 }")],
)
def test_enrichment_only_field_refused_on_triggers(field: str, value: Any) -> None:
    assert refused_fields(triggers(**{field: value})) == [field]


@pytest.mark.parametrize(
    ("field", "value"),
    [("cloudevents", True), ("trigger_fields", ["plan"]), ("trigger_events", "enter")],
)
def test_triggers_only_field_refused_on_enrichment(field: str, value: Any) -> None:
    assert refused_fields(enrichment(**{field: value})) == [field]


def test_http_webhook_url_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_job_config(triggers(webhook_url="http://hooks.example.com/in"))
    [problem] = exc.value.problems
    assert problem.field == "webhook_url"
    assert "https" in problem.rule


def test_both_webhook_url_and_url_template_are_refused() -> None:
    doc = triggers(url_template='"https://x.example.com/" + user.id')
    assert refused_fields(doc) == ["webhook_url"]


def test_neither_webhook_url_nor_url_template_is_refused() -> None:
    doc = triggers()
    del doc["webhook_url"]
    assert refused_fields(doc) == ["webhook_url"]


def test_url_template_alone_is_accepted() -> None:
    doc = triggers(url_template='"https://x.example.com/" + user.id')
    del doc["webhook_url"]
    job = parse_job_config(doc)
    assert job.webhook_url is None
    assert job.url_template == '"https://x.example.com/" + user.id'


def test_more_than_75_trigger_fields_is_refused() -> None:
    fields = [f"f{i}" for i in range(76)]
    assert refused_fields(triggers(trigger_fields=fields)) == ["trigger_fields"]


def test_75_trigger_fields_are_accepted() -> None:
    fields = [f"f{i}" for i in range(75)]
    assert parse_job_config(triggers(trigger_fields=fields)).trigger_fields == tuple(fields)


@pytest.mark.parametrize(
    ("field", "value"),
    [("worker_count", 0), ("worker_count", 21), ("batch_size", 0), ("batch_size", 1001)],
)
def test_out_of_range_counts_are_refused(field: str, value: int) -> None:
    assert refused_fields(triggers(**{field: value})) == [field]


@pytest.mark.parametrize(
    ("field", "value"),
    [("worker_count", 1), ("worker_count", 20), ("batch_size", 1), ("batch_size", 1000)],
)
def test_range_bounds_are_accepted(field: str, value: int) -> None:
    job = parse_job_config(triggers(**{field: value}))
    assert getattr(job, field) == value


def test_enrichment_without_export_fields_is_refused() -> None:
    doc = enrichment()
    del doc["export_fields"]
    assert refused_fields(doc) == ["export_fields"]


@pytest.mark.parametrize("entry", ["abc", 99, 600, True])
def test_do_not_retry_entry_that_is_not_a_status_is_refused(entry: Any) -> None:
    assert refused_fields(triggers(do_not_retry=[entry])) == ["do_not_retry"]


def test_do_not_retry_statuses_are_normalized() -> None:
    assert parse_job_config(triggers(do_not_retry=[401, "402"])).do_not_retry == (401, 402)


def test_url_template_that_does_not_parse_is_refused() -> None:
    doc = triggers(url_template='"https://x.example.com/" + ')
    del doc["webhook_url"]
    assert refused_fields(doc) == ["url_template"]


def test_every_wrong_field_is_reported_at_once() -> None:
    doc = triggers(
        webhook_url="http://hooks.example.com/in",
        worker_count=0,
        batch_size=5000,
        http_method="GET",
        stream="x",
        colour="blue",
    )
    assert set(refused_fields(doc)) == {
        "webhook_url",
        "worker_count",
        "batch_size",
        "http_method",
        "stream",
        "colour",
    }


def test_triggers_defaults() -> None:
    job = parse_job_config(triggers())
    assert re.fullmatch(r"[0-9a-f]{32}", job.id)
    assert job.http_method == "POST"
    assert job.cloudevents is False
    assert job.cloudevents_type == "com.lytics.audience.user.event"
    assert job.cloudevents_source == f"/work/{job.id}"
    assert job.existing_users is False
    assert job.trigger_events == "enter_exit"
    assert job.export_fields is None
    assert job.batch is False
    assert job.batch_size == 10
    assert job.worker_count == 5
    assert job.do_not_retry == ()


def test_generated_ids_differ() -> None:
    assert parse_job_config(triggers()).id != parse_job_config(triggers()).id


def test_enrichment_stream_default() -> None:
    assert parse_job_config(enrichment()).stream == "webhook_enrichment"


def test_never_retry_includes_builtins_and_own_statuses() -> None:
    job = parse_job_config(triggers(do_not_retry=[401, 409]))
    assert job.never_retry == frozenset({400, 404, 413, 401, 409})


@pytest.mark.parametrize("desired_state", ["running", "stopped"])
@pytest.mark.parametrize("doc", [triggers(trigger_fields=["plan"]), enrichment()])
def test_stored_job_round_trip(doc: dict[str, Any], desired_state: Any) -> None:
    job = StoredJob(config=parse_job_config(doc), desired_state=desired_state, updated_at="t1")
    record = orjson.loads(orjson.dumps(job.to_record()))
    back = StoredJob.from_record(record)
    assert back == job
    assert isinstance(back.config, JobConfig)
    assert back.desired_state == desired_state
