"""What traces cost, pure (no Kafka, no HTTP): the router's work for a batch of input
records (`plan_record` of enters for 10 jobs) with traces off, and on (the `route` span,
each record's `traceparent` header read, the context written into each queue record); and
the spans of one webhook request attempt. Spans go through the SDK's BatchSpanProcessor to
an exporter that drops them, so the export itself (a collector's business) is not counted.

`.venv/bin/python -m bench.tracing [-n 50000] [--batch 500]`
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from app.domain.attempt import Action, AttemptResult
from app.domain.queue_record import QueuedEvent
from app.domain.record_routing import Source, plan_record
from app.domain.trace_context import TraceContext
from app.transport import tracing
from bench.erasure import jobs


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@dataclass
class Message:
    """What the router reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def messages(n: int, traced: bool) -> list[Message]:
    out = []
    enter = [{"id": "s1", "slug": "a", "event": "enter"}]
    for i in range(n):
        value = orjson.dumps({"id": f"u{i}", "data": {"plan": "x"}, "segment_events": enter})
        headers = []
        if traced:
            parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
            headers = [("traceparent", parent.encode())]
        out.append(Message("in", 0, i, f"u{i}".encode(), value, headers))
    return out


def route(batches: list[list[Message]]) -> float:
    """Records routed a second, as the router does it (`RouterService._route`)."""
    configs = jobs(10)
    store: dict[bytes, bytes] = {}
    count = 0
    started = time.perf_counter()
    for batch in batches:
        with tracing.route_span(batch, "in") as traced:
            for index, m in enumerate(batch):
                trace = traced.context_of(index) if traced is not None else None
                source = Source(m.topic, m.partition, m.offset, trace)
                plan = plan_record(m.value, m.key, source, store.get, configs, "d", "c")
                plan.apply_to(store)
                count += 1
    return count / (time.perf_counter() - started)


def attempts(n: int) -> float:
    """Microseconds a request attempt spends on its span (creation, header, end)."""
    parent = TraceContext(f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01")
    events = [QueuedEvent(f"e{i}", f"u{i}", {}, {}, [], None, 0, trace=parent) for i in range(10)]
    started = time.perf_counter()
    for _ in range(n):
        traced = tracing.request_trace("j1", "audience_triggers", "POST", events, "wh")
        if traced is not None:
            span = traced.attempt(1)
            span.end(AttemptResult(status=200), Action.DELIVERED)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50_000, help="input records")
    parser.add_argument("--batch", type=int, default=500, help="records a routed batch")
    args = parser.parse_args()

    def batches(traced: bool) -> list[list[Message]]:
        ms = messages(args.n, traced)
        return [ms[i : i + args.batch] for i in range(0, len(ms), args.batch)]

    off = route(batches(traced=True))
    off_attempt = attempts(args.n)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=100_000))
    tracing.install(provider)
    try:
        on_untraced = route(batches(traced=False))
        on_traced = route(batches(traced=True))
        on_attempt = attempts(args.n)
    finally:
        tracing.shutdown()
    print(f"routing, traces off: {off:,.0f} records/s")
    print(f"routing, traces on, records without traceparent: {on_untraced:,.0f} records/s")
    print(f"routing, traces on, records with traceparent: {on_traced:,.0f} records/s")
    print(f"request attempt span: off {off_attempt:.2f} us, on {on_attempt:.1f} us")


if __name__ == "__main__":
    main()
