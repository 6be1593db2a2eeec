"""`app/transport/tracing.py` without network: which OTEL_* variables turn traces on, which
are refused (naming the variable), and the spans the router and a webhook request make,
caught by the SDK's in-memory exporter."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app.domain.attempt import Action, AttemptResult
from app.domain.queue_record import QueuedEvent
from app.domain.trace_context import TraceContext
from app.transport import tracing, tracing_config, tracing_sdk
from app.transport.tracing_config import TracingError

A = TraceContext(f"00-{'a' * 32}-{'1' * 16}-01", "vendor=x")
B = TraceContext(f"00-{'b' * 32}-{'2' * 16}-01")


# -- configuration ----------------------------------------------------------------------------


def test_traces_are_off_unless_asked() -> None:
    assert tracing_config.exporter_names({}) == []
    assert (
        tracing_config.check({"OTEL_SERVICE_NAME": "x", "OTEL_EXPORTER_OTLP_HEADERS": "a=b"}) == []
    )
    assert tracing_config.exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert tracing.configure("w1", {}) is False
    assert not tracing.enabled()


def test_an_otlp_endpoint_turns_them_on() -> None:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        assert tracing_config.exporter_names({var: "http://collector:4318"}) == ["otlp"]
    classes = tracing_config.check({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318"})
    assert [c.__name__ for c in classes] == ["OTLPSpanExporter"]


def test_sdk_disabled_wins() -> None:
    env = {"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "console"}
    assert tracing_config.exporter_names(env) == []


def test_named_exporters_are_loaded_from_entry_points() -> None:
    classes = tracing_config.check({"OTEL_TRACES_EXPORTER": "console, otlp"})
    assert classes[0] is ConsoleSpanExporter
    assert classes[1].__name__ == "OTLPSpanExporter"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER: unknown exporter 'jaeger'"),
        ({"OTEL_TRACES_EXPORTER": "none,console"}, "OTEL_TRACES_EXPORTER='none,console'"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': only http/protobuf",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
            },
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json'",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4318': not an http:// or https:// URL",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://c/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='ftp://c/v1/traces'",
        ),
    ],
)
def test_what_cannot_work_is_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(TracingError) as caught:
        tracing_config.check(env)
    assert named in str(caught.value)


def test_unknown_exporter_error_lists_the_available_ones() -> None:
    with pytest.raises(TracingError, match=r"available: console, otlp"):
        tracing_config.check({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_configure_names_the_service_and_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    try:
        assert tracing.configure("worker-7", {"OTEL_TRACES_EXPORTER": "console"}) is True
        assert tracing.enabled()
        provider = tracing._provider
        assert provider is not None
        attributes = provider.resource.attributes
        assert attributes["service.name"] == "audience-webhooks"
        assert attributes["service.instance.id"] == "worker-7"
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


def test_the_standard_service_name_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "hooks-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-3")
    try:
        tracing.configure("worker-7", {"OTEL_TRACES_EXPORTER": "console"})
        provider = tracing._provider
        assert provider is not None
        assert provider.resource.attributes["service.name"] == "hooks-eu"
        assert provider.resource.attributes["service.instance.id"] == "pod-3"
    finally:
        tracing.shutdown()


# -- the router's span ------------------------------------------------------------------------


@dataclass
class Message:
    partition: int
    headers: list[tuple[str, bytes]]


def message(context: TraceContext | None, partition: int = 0) -> Message:
    if context is None:
        return Message(partition, [])
    return Message(partition, [(k, v.encode()) for k, v in context.to_dict().items()])


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def test_route_span_continues_the_first_traced_record_and_links_the_others(
    spans: InMemorySpanExporter,
) -> None:
    events = [message(None), message(A, 1), message(B), message(A)]
    with tracing.route_span(events, "audience-events") as traced:
        assert traced is not None
        traced.routed(records_written=6, dead_lettered=1)
        carried = [traced.context_of(i) for i in range(len(events))]
    span = only(spans, "route")
    trace_id, span_id = hex_ids(span)
    assert trace_id == A.trace_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == A.span_id
    assert [f"{link.context.trace_id:032x}" for link in span.links] == [B.trace_id]
    assert span.kind is SpanKind.CONSUMER
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": "audience-events",
        "messaging.batch.message_count": 4,
        "messaging.destination.partition.ids": ("0", "1"),
        "webhooks.records_written": 6,
        "webhooks.dead_lettered": 1,
    }
    # a record with its own context keeps it; one without carries the route span's
    assert carried[1:] == [A, B, A]
    assert carried[0].trace_id == trace_id and carried[0].span_id == span_id
    assert carried[0].tracestate == "vendor=x"  # the parent's tracestate goes on


def test_an_untraced_batch_starts_a_new_trace(spans: InMemorySpanExporter) -> None:
    with tracing.route_span([message(None)], "in") as traced:
        assert traced is not None
        own = traced.context_of(0)
    span = only(spans, "route")
    assert span.parent is None and not span.links
    assert own.trace_id == f"{span.context.trace_id:032x}"


def test_a_failed_batch_is_marked_without_the_error_text(spans: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError), tracing.route_span([message(None)], "in"):
        raise RuntimeError("user u1 secret text")
    span = only(spans, "route")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError"
    assert "u1" not in repr(span.attributes) and not span.events


def test_links_are_bounded(spans: InMemorySpanExporter) -> None:
    many = [message(TraceContext(f"00-{i + 1:032x}-{'1' * 16}-01")) for i in range(200)]
    with tracing.route_span(many, "in"):
        pass
    assert len(only(spans, "route").links) == tracing.MAX_LINKS


def test_no_span_when_traces_are_off() -> None:
    assert not tracing.enabled()
    with tracing.route_span([message(A)], "in") as traced:
        assert traced is None
    assert tracing.request_trace("j", "audience_triggers", "POST", [], "w") is None


# -- a webhook request's spans ----------------------------------------------------------------


def event(trace: TraceContext | None, user: str = "u1") -> QueuedEvent:
    return QueuedEvent(
        "e-" + user, user, {"email": f"{user}@example.com"}, {}, [], None, 1, trace=trace
    )


def test_each_attempt_is_a_span_whose_context_the_request_carries(
    spans: InMemorySpanExporter,
) -> None:
    events = [event(None, "u0"), event(A, "u1"), event(B, "u2")]
    traced = tracing.request_trace("job-1", "audience_triggers", "POST", events, "wh_1")
    assert traced is not None
    first = traced.attempt(1)
    first.end(AttemptResult(status=503, excerpt="u1@example.com is down"), Action.RETRY)
    second = traced.attempt(2)
    second.end(AttemptResult(status=200), Action.DELIVERED)
    done = sorted(
        spans.get_finished_spans(), key=lambda s: str((s.attributes or {}).get("webhooks.attempt"))
    )
    assert [s.name for s in done] == ["webhook request", "webhook request"]
    for span, attempt in zip(done, (first, second), strict=True):
        trace_id, span_id = hex_ids(span)
        assert attempt.headers["traceparent"] == f"00-{trace_id}-{span_id}-01"
        assert attempt.headers["tracestate"] == "vendor=x"
        assert trace_id == A.trace_id and span.parent is not None
        assert f"{span.parent.span_id:016x}" == A.span_id
        assert [f"{link.context.trace_id:032x}" for link in span.links] == [B.trace_id]
        assert span.kind is SpanKind.CLIENT
    assert dict(done[0].attributes or {}) == {
        "webhooks.job.id": "job-1",
        "webhooks.job.type": "audience_triggers",
        "webhooks.webhook_id": "wh_1",
        "webhooks.events": 3,
        "http.request.method": "POST",
        "webhooks.attempt": 1,
        "http.response.status_code": 503,
        "webhooks.retry.decision": "retry",
        "error.type": "503",
    }
    assert done[0].status.status_code is StatusCode.ERROR
    assert done[1].attributes["webhooks.retry.decision"] == "delivered"  # type: ignore[index]
    assert done[1].status.status_code is StatusCode.UNSET
    everything = repr([(s.attributes, s.status, s.events) for s in done])
    for user_data in ("u0", "u1@", "example.com", "is down"):
        assert user_data not in everything


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (AttemptResult(refused="10.0.0.1 is private"), "destination_refused"),
        (AttemptResult(token_error="HTTP 401 from the token endpoint"), "token_error"),
        (AttemptResult(transport_error="connection reset"), "transport_error"),
        (AttemptResult(status=429), "429"),
        (AttemptResult(), "unknown"),
    ],
)
def test_error_types_are_fixed_words(
    spans: InMemorySpanExporter, result: AttemptResult, expected: str
) -> None:
    traced = tracing.request_trace("j", "user_enrichment", "PUT", [event(None)], "w")
    assert traced is not None
    traced.attempt(1).end(result, Action.OMIT)
    span = only(spans, "webhook request")
    assert span.attributes["error.type"] == expected  # type: ignore[index]
    assert span.parent is None  # no carried context: a new trace


def test_an_abandoned_attempt_still_ends(spans: InMemorySpanExporter) -> None:
    traced = tracing.request_trace("j", "audience_triggers", "POST", [event(A)], "w")
    assert traced is not None
    traced.attempt(1).abandon()
    assert only(spans, "webhook request").attributes["error.type"] == "cancelled"  # type: ignore[index]


def test_attribute_values_are_plain(spans: InMemorySpanExporter) -> None:
    """Every attribute value is a number, a short fixed string or an id (what a backend
    indexes), never a structure that could hide a profile."""
    traced = tracing.request_trace("j", "audience_triggers", "POST", [event(A)], "w")
    assert traced is not None
    traced.attempt(1).end(AttemptResult(status=200), Action.DELIVERED)
    values: list[Any] = list((only(spans, "webhook request").attributes or {}).values())
    assert all(isinstance(v, str | int) for v in values)


def test_the_otlp_ca_file_wins_over_requests_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests would replace the exporter's CA file (OTEL_EXPORTER_OTLP_CERTIFICATE) by
    REQUESTS_CA_BUNDLE; the exporter's session keeps it."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/system.pem")
    plain, pinned = requests.Session(), tracing_sdk.PinnedCASession()
    for session in (plain, pinned):
        session.verify = "/run/otel/ca.pem"
    args: tuple[Any, ...] = ("https://collector:4318/v1/traces", {}, None, None, None)
    assert plain.merge_environment_settings(*args)["verify"] == "/etc/ssl/system.pem"
    assert pinned.merge_environment_settings(*args)["verify"] == "/run/otel/ca.pem"
    pinned.verify = True  # no CA file of its own: the environment's, as usual
    assert pinned.merge_environment_settings(*args)["verify"] == "/etc/ssl/system.pem"


class Hanging(SpanExporter):
    """A collector that never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS


def buffer_one_span(exporter: SpanExporter) -> None:
    """Traces on with `exporter` behind a batch processor that holds one ended span."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracing.install(provider)
    with tracing.route_span([message(None)], "in"):
        pass


async def test_stopping_exports_what_is_buffered() -> None:
    exporter = InMemorySpanExporter()
    buffer_one_span(exporter)
    assert not exporter.get_finished_spans()  # still in the batch processor's buffer
    assert await tracing.stop() is True
    assert [s.name for s in exporter.get_finished_spans()] == ["route"]
    assert not tracing.enabled()


async def test_a_collector_that_hangs_cannot_hold_the_stop() -> None:
    exporter = Hanging()
    buffer_one_span(exporter)
    started = time.monotonic()
    try:
        assert await tracing.stop(wait_s=0.3) is False
        assert time.monotonic() - started < 5  # not the exporter's 30 s
        assert not tracing.enabled()
    finally:
        exporter.release.set()
