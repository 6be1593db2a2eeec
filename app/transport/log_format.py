"""`WEBHOOKS_LOG_FORMAT=json`: one JSON object a line, for log pipelines.

Fields: `time` (RFC 3339, UTC), `level`, `logger`, `message`, and where the line is about a
job, `job_id` (from `extra={"job_id": ...}`, or from the project's "job %s" message
convention), `event_ids` (from `extra`), `exception` (the formatted traceback).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

from app.domain.timefmt import rfc3339


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None)
        if job_id is None and isinstance(record.msg, str):
            job_id = _job_arg(record.msg, record.args)
        if job_id is not None:
            doc["job_id"] = str(job_id)
        event_ids = getattr(record, "event_ids", None)
        if event_ids:
            doc["event_ids"] = [str(e) for e in event_ids][:100]
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


_JOB = re.compile(r"\bjob %s")
_PLACEHOLDER = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdrfgxi]")


def _job_arg(msg: str, args: object) -> object | None:
    """The argument that fills the first "job %s" of a message ("job %s: ...", "delivery
    started for job %s"), the project's convention for lines about a job."""
    match = _JOB.search(msg)
    if match is None or not isinstance(args, tuple):
        return None
    index = len(_PLACEHOLDER.findall(msg.replace("%%", "")[: match.start()]))
    return args[index] if index < len(args) else None


def logging_config(level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` document: every record as JSON on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
