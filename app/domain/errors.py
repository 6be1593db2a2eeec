"""Typed errors that carry what a user needs to fix the input: the field, the rule, the value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One wrong field of a config: where it is and which rule it breaks."""

    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"


class ConfigError(ValueError):
    """A config refused as a whole; `problems` names every wrong field."""

    def __init__(self, kind: str, problems: list[FieldProblem]) -> None:
        self.kind = kind
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid {kind} ({len(problems)} problem(s)):\n{lines}")


class InvalidRecord(ValueError):
    """An input record that is not JSON or breaks the contract's schema."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
