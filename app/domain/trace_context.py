"""A W3C trace context (https://www.w3.org/TR/trace-context/) carried from an input record
to the webhook requests it causes. Pure: parsed and checked here, without OpenTelemetry, so
the router and the queue record stay free of it (`app/transport/tracing.py` uses it).

The headers come from outside (an input record's Kafka headers, a queue record): anything
that is not a valid `traceparent` is ignored, and what is kept is rewritten in its
canonical form, so a hostile header can never travel further than the parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# version-traceid-parentid-flags; a future version may append fields after a dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# The spec asks to pass on at least 512 characters of tracestate; longer ones are dropped.
MAX_TRACESTATE_CHARS = 512
MAX_HEADER_BYTES = 1024  # more than any valid traceparent: not even decoded
_TRACESTATE_CHARS = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A valid trace context: `traceparent` in canonical version-00 form, `tracestate`
    ("" for none) printable ASCII of at most `MAX_TRACESTATE_CHARS`."""

    traceparent: str
    tracestate: str = ""

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]

    @property
    def span_id(self) -> str:
        return self.traceparent[36:52]

    @classmethod
    def parse(cls, traceparent: object, tracestate: object = None) -> TraceContext | None:
        """The context the two header values describe, or None when `traceparent` is not
        a valid one (a `tracestate` that is not acceptable is dropped, the parent kept)."""
        text = _text(traceparent)
        if text is None:
            return None
        found = _TRACEPARENT.fullmatch(text.strip(" \t"))
        if found is None:
            return None
        version, trace_id, span_id, flags, rest = found.groups()
        if version == "ff" or (version == "00" and rest is not None):
            return None
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            return None
        state = _text(tracestate) or ""
        state = state.strip(" \t")
        if len(state) > MAX_TRACESTATE_CHARS or not _TRACESTATE_CHARS.fullmatch(state):
            state = ""
        return cls(f"00-{trace_id}-{span_id}-{flags}", state)

    @classmethod
    def from_headers(
        cls, headers: Iterable[tuple[str, bytes | None]] | None
    ) -> TraceContext | None:
        """The context of a Kafka record's headers (the last `traceparent` and `tracestate`
        win, as later headers replace earlier ones in most clients), or None."""
        if not headers:
            return None
        parent: bytes | None = None
        state: bytes | None = None
        for name, value in headers:
            if not isinstance(name, str):
                continue
            lowered = name.lower()
            if lowered == "traceparent":
                parent = value
            elif lowered == "tracestate":
                state = value
        if parent is None:
            return None
        return cls.parse(parent, state)

    def to_dict(self) -> dict[str, str]:
        """The headers (HTTP or a record's fields) that carry this context."""
        out = {"traceparent": self.traceparent}
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out


def _text(value: object) -> str | None:
    if isinstance(value, bytes | bytearray):
        if len(value) > MAX_HEADER_BYTES:
            return None
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        return value if len(value) <= MAX_HEADER_BYTES else None
    return None
