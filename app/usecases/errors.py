"""Failures of a use case that are not invalid input (ConfigError covers that)."""

from __future__ import annotations

from app.domain.errors import ConfigError, FieldProblem


class CommandFailed(RuntimeError):
    """The operation could not do what was asked (CLI exit status 1, HTTP 409); the message
    says why."""


class NotFound(ConfigError):
    """No such job, authorization or dead letter (CLI exit status 2, HTTP 404)."""

    def __init__(self, what: str, field: str, rule: str) -> None:
        super().__init__(what, [FieldProblem(field, rule)])
