"""JSON log lines and metric helpers (issue 12): pure parts."""

from __future__ import annotations

import logging
import sys

import orjson

from app.transport import metrics
from app.transport.log_format import JsonFormatter


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("app.x", logging.WARNING, __file__, 1, msg, args, None)
    for key, val in extra.items():
        setattr(rec, key, val)
    return rec


def test_a_line_is_one_json_object_with_the_job_id_of_the_message_convention() -> None:
    line = JsonFormatter().format(record("job %s: request %s failed", "j1", "w9"))
    doc = orjson.loads(line)
    assert doc["message"] == "job j1: request w9 failed"
    assert doc["job_id"] == "j1"
    assert doc["level"] == "warning" and doc["logger"] == "app.x"
    assert doc["time"].endswith("Z")
    assert "\n" not in line


def test_extra_job_and_event_ids_and_exceptions_are_fields() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        exc_info = sys.exc_info()
    rec = record("delivered", job_id="j2", event_ids=["e1", "e2"])
    rec.exc_info = exc_info
    doc = orjson.loads(JsonFormatter().format(rec))
    assert doc["job_id"] == "j2" and doc["event_ids"] == ["e1", "e2"]
    assert "ValueError: boom" in doc["exception"]


def test_the_job_id_is_found_wherever_job_placeholder_stands() -> None:
    line = JsonFormatter().format(record("delivery started for job %s (%s)", "j3", "topic"))
    assert orjson.loads(line)["job_id"] == "j3"
    line = JsonFormatter().format(record("backfill %s of job %s: %d partition(s)", "r", "j4", 8))
    assert orjson.loads(line)["job_id"] == "j4"


def test_a_message_without_a_job_has_no_job_id() -> None:
    assert "job_id" not in orjson.loads(JsonFormatter().format(record("router ready")))


def test_status_classes() -> None:
    assert [metrics.status_class(s) for s in (200, 302, 404, 503, None)] == [
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "error",
    ]


def test_a_deleted_jobs_series_disappear() -> None:
    metrics.EVENTS_DELIVERED.labels("gone").inc()
    metrics.REQUESTS.labels("gone", "2xx").inc()
    metrics.set_job_state("gone", "running")
    metrics.EVENTS_DELIVERED.labels("kept").inc()
    metrics.forget_job("gone")
    text = metrics.exposition().decode()
    assert 'job_id="gone"' not in text
    assert 'webhooks_events_delivered_total{job_id="kept"} 1.0' in text


def test_a_job_moving_to_another_process_leaves_its_gauges_keeps_its_counters() -> None:
    metrics.EVENTS_DELIVERED.labels("moved").inc()
    metrics.BACKLOG.labels("moved").set(5)
    metrics.set_job_state("moved", "running")
    metrics.job_left("moved")
    text = metrics.exposition().decode()
    assert 'webhooks_events_delivered_total{job_id="moved"} 1.0' in text
    assert 'webhooks_job_backlog_records{job_id="moved"}' not in text
    assert 'webhooks_job_state{job_id="moved"' not in text
