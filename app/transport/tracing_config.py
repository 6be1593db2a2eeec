"""Which exporters the OTEL_* variables ask for, and what in them this service cannot honour
(`app/transport/tracing.py` uses it at worker start; `webhooks worker` before, so a wrong
value is one line and exit 2). Light: no SDK import, the exporter classes are loaded from
their entry points only when asked for."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_ALIASES = {"otlp": "otlp_proto_http"}  # the grpc exporter is not installed


class TracingError(ValueError):
    """The OTEL_* variables ask for something this service cannot do; names the variable."""


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """The exporters the OTEL_* variables ask for; empty: traces are off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        endpoint = _first(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint else []
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    if "none" in names:
        if len(names) > 1:
            raise TracingError(f"OTEL_TRACES_EXPORTER={raw!r}: 'none' cannot go with others")
        return []
    return names


def check(env: Mapping[str, str]) -> list[type[SpanExporter]]:
    """The exporter classes the variables ask for (none: off); a `TracingError` naming the
    variable for anything that would fail or be ignored once the worker runs."""
    names = exporter_names(env)
    if not names:
        return []
    available = {ep.name: ep for ep in entry_points(group=_EXPORTER_GROUP)}
    classes = []
    for name in names:
        entry = available.get(_ALIASES.get(name, name))
        if entry is None:
            known = sorted({"otlp", *available} - set(_ALIASES.values()))
            raise TracingError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (available: {', '.join(known)})"
            )
        classes.append(entry.load())
    if "otlp" in names or "otlp_proto_http" in names:
        _check_otlp(env)
    return classes


def _check_otlp(env: Mapping[str, str]) -> None:
    for var in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(var, "").strip()
        if protocol:
            if protocol != "http/protobuf":
                raise TracingError(
                    f"{var}={protocol!r}: only http/protobuf is supported "
                    "(send to the collector's OTLP/HTTP port, usually 4318)"
                )
            break
    for var in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = env.get(var, "").strip()
        if endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise TracingError(
                    f"{var}={endpoint!r}: not an http:// or https:// URL "
                    "(e.g. http://otel-collector:4318)"
                )


def _first(env: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return ""
