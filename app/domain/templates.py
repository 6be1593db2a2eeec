"""Jsonnet templates for URLs and enrichment bodies.

A template sees two variables: `user` (the input record: id, data, by_fields, segment_events)
and `job` (the job config). They are bound on the template's first line so Jsonnet's error
positions still match the user's own line numbers.
"""

from __future__ import annotations

import re
from typing import Any

import _jsonnet
import orjson

_PROBE_POSITION = re.compile(r"template:(\d+):")
_PRELUDE = 'local user = std.extVar("user"), job = std.extVar("job"); '


class TemplateError(ValueError):
    """A template that does not parse or does not evaluate; the message is Jsonnet's."""


def syntax_error(source: str) -> str | None:
    """Jsonnet's parse error for `source`, or None when it parses.

    Jsonnet is lazy: binding the template to an unused local parses it without running it,
    so a template that reads fields a sample user lacks is not refused.
    """
    probe = f"local user = {{}}, job = {{}}; local _template = (\n{source}\n); null"
    try:
        _jsonnet.evaluate_snippet("template", probe)
    except RuntimeError as exc:
        # The probe puts the template on its second line: shift positions back to the user's.
        return _PROBE_POSITION.sub(lambda m: f"line {int(m[1]) - 1}:", str(exc)).strip()
    return None


def render(source: str, user: dict[str, Any], job: dict[str, Any]) -> Any:
    """Evaluate `source` with `user` and `job` bound; return the JSON value it produces."""
    try:
        out = _jsonnet.evaluate_snippet(
            "template",
            _PRELUDE + source,
            ext_codes={"user": orjson.dumps(user).decode(), "job": orjson.dumps(job).decode()},
        )
    except RuntimeError as exc:
        raise TemplateError(str(exc).strip()) from None
    return orjson.loads(out)


def render_url(source: str, user: dict[str, Any], job: dict[str, Any]) -> str:
    """Evaluate a URL template; it must produce one string."""
    value = render(source, user, job)
    if not isinstance(value, str):
        raise TemplateError(f"url_template must produce a string, got {type(value).__name__}")
    return value
