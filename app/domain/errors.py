"""Typed errors that carry what a user needs to fix the input: the field, the rule, the value."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

# What an error message lists at most: a config with 90 000 unknown keys gets the first
# problems and a count, not a 4 MB answer (issue 20).
MAX_LISTED_PROBLEMS = 50

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = 3
_SHOWN.maxstring = 80
_SHOWN.maxother = 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 6
_SHOWN.maxlong = 40


def shown(value: Any) -> str:
    """A user's value as an error message shows it: a bounded repr (depth, length and
    entries cut with `...`), never the whole of a 1 000-deep list or a 1 MB string."""
    return _SHOWN.repr(value)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One wrong field of a config: where it is and which rule it breaks."""

    field: str
    rule: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"


class ConfigError(ValueError):
    """A config refused as a whole; `problems` names every wrong field."""

    def __init__(self, kind: str, problems: list[FieldProblem], unlisted: int = 0) -> None:
        """`unlisted`: problems found beyond `problems` (when errors of several documents
        are merged, each already cut to its first problems)."""
        self.kind = kind
        self.problem_count = len(problems) + unlisted
        # only the first problems are kept and listed; `problem_count` says how many
        self.problems: list[FieldProblem] = problems[:MAX_LISTED_PROBLEMS]
        lines = "\n".join(f"  - {p}" for p in self.problems)
        tail = f"\n  ... and {self.unlisted} more" if self.unlisted else ""
        super().__init__(f"invalid {kind} ({self.problem_count} problem(s)):\n{lines}{tail}")

    @property
    def unlisted(self) -> int:
        return self.problem_count - len(self.problems)


class InvalidRecord(ValueError):
    """An input record that is not JSON or breaks the contract's schema."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
