"""The OpenTelemetry SDK side of `app/transport/tracing.py`: the tracer provider and its
exporters, built only when traces are on (importing the SDK, requests and protobuf costs
the `webhooks` commands ~0.15 s they need not pay)."""

from __future__ import annotations

from typing import Any

import requests
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter


def build_provider(
    exporters: list[type[SpanExporter]], instance_id: str, service_name: str
) -> TracerProvider:
    """A provider exporting through `exporters` in batches (OTEL_BSP_*), its resource from
    OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, else `service_name` and `instance_id`."""
    detected = dict(Resource.create().attributes)
    if str(detected.get("service.name", "")).startswith("unknown_service"):
        detected["service.name"] = service_name
    if "service.instance.id" not in OTELResourceDetector().detect().attributes:
        detected["service.instance.id"] = instance_id  # the SDK's default is a random one
    # Not shut down at exit by the SDK: the worker does it on stop, bounded (tracing.stop).
    provider = TracerProvider(resource=Resource(detected), shutdown_on_exit=False)
    for exporter_class in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(exporter_class)))
    return provider


class PinnedCASession(requests.Session):
    """A requests session whose own CA file wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE:
    requests lets those variables replace it (psf/requests#3829), so on a machine that sets
    them `OTEL_EXPORTER_OTLP_CERTIFICATE` would be ignored and every export fail."""

    def merge_environment_settings(  # type: ignore[override]
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        if verify is None and isinstance(self.verify, str):
            merged["verify"] = self.verify
        return merged


def _exporter(exporter_class: type[SpanExporter]) -> SpanExporter:
    if exporter_class.__name__ == "OTLPSpanExporter":  # the CA file of OTEL_EXPORTER_OTLP_*
        return exporter_class(session=PinnedCASession())  # type: ignore[call-arg]
    return exporter_class()
