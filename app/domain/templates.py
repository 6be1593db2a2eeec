"""Jsonnet templates for URLs and enrichment bodies.

A template sees two variables: `user` (the input record: id, data, by_fields, segment_events)
and `job` (the job config). A URL template's `user` is the whole profile; a body template's
has only the job's export fields in `data` and `by_fields` (`QueuedEvent.template_user`), and
`template_fields` finds the reads of other fields so that the job is refused when applied.
The template is loaded as the body of `function(user, job)` from a virtual file, so it is
parsed on its own (it cannot close a wrapper around it), it can be checked without being run,
and error positions are the user's own lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import _jsonnet
import orjson

_FILE = "template.jsonnet"
_HEADER = "function(user, job)\n"
_POSITION = re.compile(re.escape(_FILE) + r":(\d+):")
_PROBE = f'std.type(import "{_FILE}")'
_CALL = f'(import "{_FILE}")(std.extVar("user"), std.extVar("job"))'


class TemplateError(ValueError):
    """A template that does not parse or does not evaluate; the message is Jsonnet's."""


def _importer(source: str) -> Callable[[str, str], tuple[str, bytes]]:
    def load(_base: str, rel: str) -> tuple[str, bytes]:
        if rel != _FILE:
            raise RuntimeError(f"templates cannot import files ({rel!r})")
        return rel, (_HEADER + source).encode()

    return load


def _message(exc: RuntimeError) -> str:
    # The header takes the file's first line: shift positions back to the user's lines.
    return _POSITION.sub(lambda m: f"line {int(m[1]) - 1}:", str(exc)).strip()


def syntax_error(source: str) -> str | None:
    """Jsonnet's parse error for `source`, or None when it parses (it is not run)."""
    try:
        _jsonnet.evaluate_snippet("probe", _PROBE, import_callback=_importer(source))
    except RuntimeError as exc:
        return _message(exc)
    return None


def render(source: str, user: dict[str, Any], job: dict[str, Any]) -> Any:
    """Evaluate `source` with `user` and `job` bound; return the JSON value it produces."""
    try:
        out = _jsonnet.evaluate_snippet(
            "template",
            _CALL,
            import_callback=_importer(source),
            ext_codes={"user": orjson.dumps(user).decode(), "job": orjson.dumps(job).decode()},
        )
    except RuntimeError as exc:
        raise TemplateError(_message(exc)) from None
    return orjson.loads(out)


def render_url(source: str, user: dict[str, Any], job: dict[str, Any]) -> str:
    """Evaluate a URL template; it must produce one string."""
    return url_from_template(render(source, user, job))


def url_from_template(value: Any) -> str:
    """A URL template's value, which must be one string."""
    if not isinstance(value, str):
        raise TemplateError(f"url_template must produce a string, got {type(value).__name__}")
    return value
