"""OpenTelemetry traces (README, "Dashboards and traces"): off unless the standard OTEL_*
variables ask for them.

On when `OTEL_TRACES_EXPORTER` names an exporter other than `none`, or when an OTLP endpoint
is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: exporter `otlp`,
OTLP over HTTP/protobuf); `OTEL_SDK_DISABLED=true` keeps them off (`tracing_config.py`
reads these). The SDK itself reads the rest: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*` (headers, certificates,
timeout, compression).

Two spans:
- `route` (CONSUMER), one per batch of input records the router routes. Its parent is the
  trace context of the batch's first input record that has one (a W3C `traceparent` Kafka
  header), with links to the others'. Each queue record carries its input record's context,
  or the `route` span's when the input had none.
- `webhook request` (CLIENT), one per attempt of a webhook request, child of the context its
  first event carries (links to the others'); the request carries the span's `traceparent`
  (and `tracestate`), so the receiver joins the trace.

Attributes never hold profile data, user ids, URLs (a `url_template` can put profile fields
in them) or secrets: job id and type, counts, attempt, HTTP status, retry decision.
When traces are off nothing here runs beyond one `None` check per batch and per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app.domain.attempt import Action, AttemptResult
from app.domain.queue_record import QueuedEvent
from app.domain.trace_context import TraceContext
from app.transport.tracing_config import check

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

SCOPE = "audience-webhooks"
DEFAULT_SERVICE_NAME = "audience-webhooks"
SHUTDOWN_WAIT_S = 5.0  # the longest a stopping worker waits for its last spans' export
MAX_LINKS = 32  # per span: a batch of thousands of traced records links to the first ones
_PROPAGATOR = TraceContextTextMapPropagator()

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def configure(instance_id: str, env: Mapping[str, str] | None = None) -> bool:
    """Start exporting spans if the OTEL_* variables ask for it; True when on. (The SDK and
    the exporters are imported only then: the `webhooks` commands start without them.)"""
    classes = check(os.environ if env is None else env)  # TracingError: see tracing_config
    if not classes:
        return False
    from app.transport.tracing_sdk import build_provider

    provider = build_provider(classes, instance_id, DEFAULT_SERVICE_NAME)
    install(provider)
    log.info(
        "traces on: exporter(s) %s, service %s",
        ", ".join(c.__name__ for c in classes),
        provider.resource.attributes["service.name"],
    )
    return True


def install(provider: TracerProvider | None) -> None:
    """Use `provider` for this process's spans (None: traces off). Tests install one with
    an in-memory exporter."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer(SCOPE) if provider is not None else None


def shutdown() -> None:
    """Export what is buffered and stop (blocking: run it in a thread)."""
    provider = _provider
    install(None)
    if provider is not None:
        provider.shutdown()


async def stop(wait_s: float = SHUTDOWN_WAIT_S) -> bool:
    """`shutdown` without blocking the event loop, waiting `wait_s` at most: a collector that
    does not answer cannot hold a stopping worker (the export goes on in a daemon thread,
    which does not keep the process alive). True when it finished in time."""
    if _provider is None:
        return True
    done = threading.Event()

    def run() -> None:
        try:
            shutdown()
        finally:
            done.set()

    threading.Thread(target=run, name="otel-shutdown", daemon=True).start()
    finished = await asyncio.to_thread(done.wait, wait_s)
    if not finished:
        log.warning("traces: the last spans were not exported within %.0f s; dropped", wait_s)
    return finished


def enabled() -> bool:
    return _tracer is not None


# -- the router's span -----------------------------------------------------------------------


@dataclass(slots=True)
class RouteTrace:
    """The `route` span of one batch and the context each of its records carries on."""

    span: Span
    own: TraceContext
    carried: list[TraceContext | None]

    def context_of(self, index: int) -> TraceContext:
        """What the queue records of the batch's `index`th record carry."""
        return self.carried[index] or self.own

    def routed(self, records_written: int, dead_lettered: int) -> None:
        self.span.set_attribute("webhooks.records_written", records_written)
        self.span.set_attribute("webhooks.dead_lettered", dead_lettered)


@contextlib.contextmanager
def route_span(events: Sequence[Any], topic: str) -> Iterator[RouteTrace | None]:
    """The `route` span of a batch of input records (aiokafka `ConsumerRecord`s), or None
    when traces are off."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    carried = [TraceContext.from_headers(getattr(m, "headers", None)) for m in events]
    parent, links = _parent_and_links(carried)
    partitions = sorted({m.partition for m in events})
    span = tracer.start_span(
        "route",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.batch.message_count": len(events),
            "messaging.destination.partition.ids": [str(p) for p in partitions],
        },
    )
    try:
        yield RouteTrace(span, _context_of(span), carried)
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(StatusCode.ERROR, type(exc).__name__)
        raise
    finally:
        span.end()


# -- the webhook request's spans -------------------------------------------------------------


class AttemptSpan:
    """The span of one attempt; `headers` carry its context to the receiver."""

    __slots__ = ("_span", "headers")

    def __init__(self, span: Span) -> None:
        self._span = span
        self.headers: dict[str, str] = {}
        _PROPAGATOR.inject(self.headers, context=trace.set_span_in_context(span))

    def end(self, result: AttemptResult, action: Action) -> None:
        """Record what the attempt gave and what happens next, and end the span."""
        span = self._span
        if result.status is not None:
            span.set_attribute("http.response.status_code", result.status)
        span.set_attribute("webhooks.retry.decision", action.value)
        if action is not Action.DELIVERED:
            error = error_type(result)
            span.set_attribute("error.type", error)
            span.set_status(StatusCode.ERROR, error)
        span.end()

    def abandon(self) -> None:
        """The attempt was cancelled (the worker stops or the job moves)."""
        self._span.set_attribute("error.type", "cancelled")
        self._span.set_status(StatusCode.ERROR, "cancelled")
        self._span.end()


@dataclass(slots=True)
class RequestTrace:
    """What every attempt of one webhook request shares: its parent, links and attributes."""

    tracer: Tracer
    parent: Context
    links: list[Link]
    attributes: dict[str, Any]

    def attempt(self, number: int) -> AttemptSpan:
        span = self.tracer.start_span(
            "webhook request",
            context=self.parent,
            kind=SpanKind.CLIENT,
            links=self.links,
            attributes={**self.attributes, "webhooks.attempt": number},
        )
        return AttemptSpan(span)


def request_trace(
    job_id: str, job_type: str, method: str, events: Sequence[QueuedEvent], webhook_id: str
) -> RequestTrace | None:
    """The trace of one webhook request of `events`, or None when traces are off."""
    tracer = _tracer
    if tracer is None:
        return None
    parent, links = _parent_and_links([e.trace for e in events])
    return RequestTrace(
        tracer,
        parent,
        links,
        {
            "webhooks.job.id": job_id,
            "webhooks.job.type": job_type,
            "webhooks.webhook_id": webhook_id,
            "webhooks.events": len(events),
            "http.request.method": method,
        },
    )


def error_type(result: AttemptResult) -> str:
    """A short, fixed name for what went wrong (never the receiver's text)."""
    if result.refused is not None:
        return "destination_refused"
    if result.token_error is not None:
        return "token_error"
    if result.transport_error is not None:
        return "transport_error"
    return str(result.status) if result.status is not None else "unknown"


# -- helpers ---------------------------------------------------------------------------------


def _parent_and_links(contexts: Sequence[TraceContext | None]) -> tuple[Context, list[Link]]:
    """The first context as parent (none: an empty context, so the span is a root whatever
    the task's current context); links to the others (distinct, at most `MAX_LINKS`)."""
    parent = Context()
    first: TraceContext | None = None
    links: list[Link] = []
    seen: set[str] = set()
    for carried in contexts:
        if carried is None or carried.traceparent in seen:
            continue
        seen.add(carried.traceparent)
        if first is None:
            first = carried
            parent = _PROPAGATOR.extract(carried.to_dict())
            continue
        if len(links) >= MAX_LINKS:
            break
        context = trace.get_current_span(_PROPAGATOR.extract(carried.to_dict()))
        links.append(Link(context.get_span_context()))
    return parent, links


def _context_of(span: Span) -> TraceContext:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    parsed = TraceContext.parse(carrier.get("traceparent"), carrier.get("tracestate"))
    if parsed is None:  # an invalid span context (cannot happen with the SDK's tracer)
        raise RuntimeError("the route span has no valid trace context")
    return parsed
