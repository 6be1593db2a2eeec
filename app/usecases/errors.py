"""Failures of a use case that are not invalid input (ConfigError covers that)."""

from __future__ import annotations


class CommandFailed(RuntimeError):
    """The operation could not do what was asked (CLI exit status 1, HTTP 409); the message
    says why."""
