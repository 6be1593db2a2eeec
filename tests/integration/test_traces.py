"""OpenTelemetry traces (issue 23, item 3), with real parts: a worker process exporting over
OTLP/HTTPS to a loopback collector, a real broker, a real HTTPS receiver reading the
`traceparent` each webhook carries; and the request sender in this process with the SDK's
in-memory exporter against the same kind of receiver."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.delivery.request_sender import RequestSender
from app.devtools.receiver import Behaviour, Received, WebhookReceiver
from app.devtools.tls import LocalTLS
from app.domain.job_state import JobRetrySchedule, JobStateMachine, JobStatus
from app.domain.jobs import parse_job_config
from app.domain.queue_record import QueuedEvent
from app.domain.retry import RetryPolicy
from app.domain.trace_context import TraceContext
from app.settings import Settings
from app.topic_catalog import load_catalog
from app.transport.auth_resolver import AuthResolver
from app.transport.http import WebhookClient
from app.transport.job_log import JobLog
from app.transport.kafka import durable_producer
from app.transport.kafka_admin import ensure_topics
from app.transport.registry import ConfigRegistry
from tests.support.jobs import apply_jobs, triggers_job, wait_for_requests
from tests.support.kafka_io import produce
from tests.support.otlp_collector import ExportedSpan, OtlpCollector
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess, run_cli
from tests.support.records import input_record

SPAN_KIND_CONSUMER = 5  # opentelemetry.proto.trace.v1.Span.SpanKind
SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2
PROFILE = {"first_name": "Joe", "email": "joe@example.com"}


def new_context() -> TraceContext:
    return TraceContext(f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01", "vendor=1")


def header(request: Received, name: str) -> str:
    found = [v for k, v in request.headers.items() if k.lower() == name]
    assert len(found) == 1, (name, request.headers)
    return found[0]


def carried(request: Received) -> TraceContext:
    got = TraceContext.parse(header(request, "traceparent"))
    assert got is not None, request.headers
    return got


def fail_first(status: int) -> Behaviour:
    return Behaviour(respond=lambda n: (status, 0.0, {}, b"") if n == 0 else (200, 0.0, {}, b""))


@pytest.fixture
async def collector(local_tls: LocalTLS) -> AsyncIterator[OtlpCollector]:
    server = OtlpCollector(local_tls)
    await server.start()
    yield server
    await server.stop()


async def test_a_worker_continues_the_input_trace_to_the_webhook_and_exports_its_spans(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    collector: OtlpCollector,
    local_tls: LocalTLS,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = worker_factory(
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_EXPORTER_OTLP_CERTIFICATE=str(local_tls.ca_path),
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    assert "traces on: exporter(s) OTLPSpanExporter" in worker.since_start()
    job = triggers_job(receiver.url("/hook"))
    await apply_jobs(test_env, tmp_path, worker, job)
    receiver.behaviours["/hook"] = fail_first(503)  # the traced record's request: 2 attempts

    upstream = new_context()
    headers = [(k, v.encode()) for k, v in upstream.to_dict().items()]
    await produce(
        test_settings,
        test_settings.input_topic,
        [input_record("u1", PROFILE, ("enter", "newsletter"))],
        headers=headers,
    )
    failed, delivered = await wait_for_requests(receiver, "/hook", 2)
    await produce(
        test_settings,
        test_settings.input_topic,
        [input_record("u2", PROFILE, ("enter", "newsletter"))],
    )
    untraced = (await wait_for_requests(receiver, "/hook", 3))[2]

    # Each attempt carries its own span's context, in the upstream trace, with its tracestate.
    attempts = [carried(failed), carried(delivered)]
    assert [a.trace_id for a in attempts] == [upstream.trace_id] * 2
    assert attempts[0].span_id != attempts[1].span_id
    assert upstream.span_id not in (attempts[0].span_id, attempts[1].span_id)
    assert header(delivered, "tracestate") == "vendor=1"

    def exported(span_id: str) -> ExportedSpan | None:
        return next((s for s in collector.spans if s.span_id == span_id), None)

    wanted = [a.span_id for a in attempts] + [carried(untraced).span_id]
    await eventually(
        lambda: [exported(s) for s in wanted],
        lambda got: all(got),
        wait_s=30,
        what=lambda got: f"exported spans {[s.name for s in collector.spans]}",
    )
    first, second = (exported(a.span_id) for a in attempts)
    assert first is not None and second is not None
    for span, attempt in ((first, 1), (second, 2)):
        assert span.name == "webhook request" and span.kind == SPAN_KIND_CLIENT
        assert span.trace_id == upstream.trace_id
        assert span.parent_span_id == upstream.span_id  # the input record's context
        assert span.attributes["webhooks.job.id"] == job["id"]
        assert span.attributes["webhooks.job.type"] == "audience_triggers"
        assert span.attributes["webhooks.events"] == 1
        assert span.attributes["webhooks.attempt"] == attempt
        assert span.attributes["webhooks.webhook_id"] == header(delivered, "webhook-id")
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["webhooks.retry.decision"] == "retry"
    assert first.status_code == STATUS_ERROR
    assert second.attributes["http.response.status_code"] == 200
    assert second.attributes["webhooks.retry.decision"] == "delivered"
    assert second.resource["service.name"] == "audience-webhooks"
    assert second.resource["service.instance.id"] == test_env["WEBHOOKS_WORKER_ID"]

    # The router's batch span is in the upstream trace too.
    routes = [s for s in collector.named("route") if s.trace_id == upstream.trace_id]
    assert len(routes) == 1 and routes[0].parent_span_id == upstream.span_id
    assert routes[0].kind == SPAN_KIND_CONSUMER
    assert routes[0].attributes["messaging.destination.name"] == test_settings.input_topic
    assert routes[0].attributes["messaging.batch.message_count"] == 1
    assert routes[0].attributes["webhooks.records_written"] >= 1

    # A record without a context: its webhook continues the trace its route span started.
    alone = exported(carried(untraced).span_id)
    assert alone is not None and alone.trace_id == carried(untraced).trace_id
    route = next(s for s in collector.named("route") if s.span_id == alone.parent_span_id)
    assert route.trace_id == alone.trace_id and route.parent_span_id == ""

    # No profile data, user id or URL in any span.
    text = repr([(s.attributes, s.resource) for s in collector.spans])
    for leaked in ("joe@example.com", "Joe", "'u1'", "'u2'", "/hook", "127.0.0.1"):
        assert leaked not in text


def test_a_worker_refuses_otel_settings_it_cannot_honour(test_env: dict[str, str]) -> None:
    result = run_cli({**test_env, "OTEL_TRACES_EXPORTER": "jaeger"}, "worker", timeout=30)
    assert result.code == 2
    assert "OTEL_TRACES_EXPORTER: unknown exporter 'jaeger'" in result.err
    result = run_cli(
        {**test_env, "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, "worker", timeout=30
    )
    assert result.code == 2 and "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4317'" in result.err


# -- in this process, with the SDK's in-memory exporter ---------------------------------------


def queued(user: str, trace: TraceContext | None) -> QueuedEvent:
    return QueuedEvent(f"ev-{user}", user, dict(PROFILE), {}, [], None, 0, trace=trace)


async def test_each_request_attempt_is_a_span_the_receiver_can_join(
    test_settings: Settings, receiver: WebhookReceiver, spans: InMemorySpanExporter
) -> None:
    job = parse_job_config(triggers_job(receiver.url("/mem"), batch=True, batch_size=10))
    receiver.behaviours["/mem"] = fail_first(500)
    # the job log the retry is written to (a missing topic would hold the write a minute)
    log_topic = [t for t in load_catalog(test_settings) if t.name == test_settings.job_log_topic]
    assert len(log_topic) == 1
    await ensure_topics(test_settings, log_topic)
    client = WebhookClient(test_settings)
    producer = durable_producer(test_settings)
    await client.start()
    await producer.start()
    omitted: list[Any] = []

    async def on_omit(*args: Any) -> None:
        omitted.append(args)

    async def on_answer(*_args: Any) -> None:
        pass

    try:
        sender = RequestSender(
            job,
            AuthResolver(ConfigRegistry(test_settings), None, client),
            client,
            JobStateMachine(JobStatus(), JobRetrySchedule(), 300.0, 300.0),
            RetryPolicy(0.01, 0.05),
            JobLog(test_settings, producer),
            on_omit=on_omit,
            on_answer=on_answer,
        )
        a, b = new_context(), new_context()
        events = [queued("u0", None), queued("u1", a), queued("u2", b)]
        await sender.send(events, receiver.url("/mem"), b"{}", "application/json", lambda: None)
    finally:
        await producer.stop()
        await client.close()
    assert not omitted
    got = receiver.for_path("/mem")
    assert [r.status for r in got] == [500, 200]
    finished = {f"{s.context.span_id:016x}": s for s in spans.get_finished_spans()}
    for request, attempt in zip(got, (1, 2), strict=True):
        context = carried(request)
        span = finished[context.span_id]  # the header names the span that sent it
        assert context.trace_id == a.trace_id == f"{span.context.trace_id:032x}"
        assert span.parent is not None and f"{span.parent.span_id:016x}" == a.span_id
        assert [f"{link.context.trace_id:032x}" for link in span.links] == [b.trace_id]
        assert (span.attributes or {})["webhooks.attempt"] == attempt
        assert (span.attributes or {})["webhooks.events"] == 3
        assert header(request, "tracestate") == "vendor=1"
