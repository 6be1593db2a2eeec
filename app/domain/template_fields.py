"""Which of the user's fields a body template reads, found in its Jsonnet source without
running it, so that a read of a field the job does not select (`export_fields`) is refused
when the job is applied instead of dead-lettering every event (a body template sees only the
selected fields; a URL template sees the whole profile and is not checked).

`field_reads` splits the source into tokens, taking string literals (`"…"`, `'…'`, `@"…"`,
`@'…'`, `|||` text blocks) and comments (`//`, `#`, `/* */`) as units, so text inside them
is never taken for a read. It then matches `user.data.NAME` and `user.data["NAME"]` (and
`by_fields`, and `user["data"]`), with whitespace or comments allowed between the tokens. A
`user` right after a `.` is a field of something else (`self.user.data.x`), not the profile.

Not found (limits):
- reads through another name: `local d = user.data; d.ssn`; a template that rebinds `user`
  (`local user = …`, `function(user) …`) has that value's reads counted as the profile's;
- dynamic reads (`user.data[k]`, `user.data["a" + b]`): they cannot be judged without the
  data, and still fail at run time (the event is dead-lettered with the reason);
- guarded reads, on purpose: `std.objectHas(user.data, "x")`, `std.get(user.data, "x", d)`,
  `std.objectFields(user.data)` do not fail on an absent field, so they are allowed.

Pure and total: any text gives an answer (never an error), in time linear in its length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

Group = Literal["data", "by_fields"]
GROUPS: tuple[Group, ...] = ("data", "by_fields")

_WORD = re.compile(r"[A-Za-z0-9_]+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"[ \t\r\n]+")
_PLAIN = {'"': re.compile(r'[^"\\]+'), "'": re.compile(r"[^'\\]+")}
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_BLOCK_OPENING = re.compile(r"-?[ \t]*\r?\n")
_INDENT = re.compile(r"[ \t]*")


@dataclass(frozen=True, slots=True)
class FieldRead:
    """One read of a user field in a template: `user.<group>.<name>`."""

    group: Group
    name: str

    def __str__(self) -> str:
        if _IDENTIFIER.fullmatch(self.name):
            return f"user.{self.group}.{self.name}"
        return f"user.{self.group}[{json.dumps(self.name)}]"  # ASCII, whatever the name


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["name", "string", "symbol"]
    text: str  # a name, a string's value, or one character


def field_reads(source: str) -> tuple[FieldRead, ...]:
    """The user fields `source` reads statically (see the module docstring), each once, in
    the order of their first read."""
    tokens = list(_tokens(source))
    reads: dict[FieldRead, None] = {}
    for k, token in enumerate(tokens):
        if token != _Token("name", "user") or (k and tokens[k - 1] == _Token("symbol", ".")):
            continue
        group = _member(tokens, k + 1)
        if group is None or group[0] not in GROUPS:
            continue
        field = _member(tokens, group[1])
        if field is not None:
            reads[FieldRead("data" if group[0] == "data" else "by_fields", field[0])] = None
    return tuple(reads)


def unselected_reads(source: str, selected: Collection[str]) -> tuple[FieldRead, ...]:
    """The reads of `source` of a field that is not in `selected` (the export fields)."""
    return tuple(r for r in field_reads(source) if r.name not in selected)


def unselected_fields_rule(
    body_template: str | None, export_fields: Sequence[str] | None
) -> str | None:
    """The rule a `body_template` breaks when it reads fields the job does not select, or
    None (also with no template, or no `export_fields`: then every field is visible)."""
    if body_template is None or export_fields is None:
        return None
    reads = unselected_reads(body_template, set(export_fields))
    if not reads:
        return None
    verb = "which is" if len(reads) == 1 else "which are"
    shown = ", ".join(str(r) for r in reads)
    return f"reads {shown}, {verb} not in export_fields (selected: {', '.join(export_fields)})"


def _member(tokens: list[_Token], k: int) -> tuple[str, int] | None:
    """The member name accessed at `tokens[k]` (`.name` or `["name"]`) and the index after
    it, or None when there is no static member access there."""
    if tokens[k : k + 1] == [_Token("symbol", ".")] and k + 1 < len(tokens):
        name = tokens[k + 1]
        if name.kind == "name" and _IDENTIFIER.fullmatch(name.text):
            return name.text, k + 2
        return None
    window = tokens[k : k + 3]
    if (
        len(window) == 3
        and window[0] == _Token("symbol", "[")
        and window[1].kind == "string"
        and window[2] == _Token("symbol", "]")
    ):
        return window[1].text, k + 3
    return None


def _tokens(source: str) -> Iterator[_Token]:
    """Jsonnet tokens as far as `field_reads` needs them: names (and numbers), string
    values, and every other character as a symbol; whitespace and comments dropped."""
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in " \t\r\n":
            i = _end(_SPACE.match(source, i), i + 1)
        elif c == "#" or source.startswith("//", i):
            newline = source.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif source.startswith("/*", i):
            close = source.find("*/", i + 2)
            i = n if close < 0 else close + 2
        elif c in "\"'":
            text, i = _quoted(source, i + 1, c)
            yield _Token("string", text)
        elif c == "@" and source[i + 1 : i + 2] in ('"', "'"):
            text, i = _verbatim(source, i + 2, source[i + 1])
            yield _Token("string", text)
        elif source.startswith("|||", i):
            text, i = _text_block(source, i + 3)
            yield _Token("string", text)
        elif (word := _WORD.match(source, i)) is not None:
            i = word.end()
            yield _Token("name", word.group())
        else:
            i += 1
            yield _Token("symbol", c)


def _end(match: re.Match[str] | None, default: int) -> int:
    return default if match is None else match.end()


def _quoted(source: str, i: int, quote: str) -> tuple[str, int]:
    """The value of the string whose text starts at `i` (after its opening `quote`), with
    its escapes read, and the index after its closing quote (the end when unterminated)."""
    parts: list[str] = []
    plain, n = _PLAIN[quote], len(source)
    while i < n:
        c = source[i]
        if c == quote:
            return _pair_surrogates("".join(parts)), i + 1
        if c != "\\":
            end = _end(plain.match(source, i), i + 1)
            parts.append(source[i:end])
            i = end
            continue
        escape = source[i + 1 : i + 2]
        hex4 = _HEX4.match(source, i + 2) if escape == "u" else None
        if hex4 is not None:
            parts.append(chr(int(hex4.group(), 16)))
            i = hex4.end()
        else:
            parts.append(_ESCAPES.get(escape, escape))
            i += 2
    return _pair_surrogates("".join(parts)), n


def _pair_surrogates(text: str) -> str:
    """`text` with each `\\uD83D\\uDE00`-style pair as the one character it spells, as
    Jsonnet reads it (a lone surrogate becomes U+FFFD)."""
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _verbatim(source: str, i: int, quote: str) -> tuple[str, int]:
    """A verbatim string (`@"…"`: no escapes, a doubled quote is one quote) whose text
    starts at `i`: its value and the index after it (the end when unterminated)."""
    parts: list[str] = []
    while True:
        close = source.find(quote, i)
        if close < 0:
            parts.append(source[i:])
            return "".join(parts), len(source)
        parts.append(source[i:close])
        if source.startswith(quote, close + 1):
            parts.append(quote)
            i = close + 2
        else:
            return "".join(parts), close + 1


def _text_block(source: str, i: int) -> tuple[str, int]:
    """A text block whose `|||` ends at `i`: its value and the index after its closing
    `|||`. As Jsonnet reads it: the first non-empty line sets the indent, the block runs
    while lines are empty or start with that indent, and the next line holds the closing
    `|||`. Text that is not a well-formed block is still consumed, never raised on."""
    opening = _BLOCK_OPENING.match(source, i)
    if opening is None:
        return "", i  # not a text block Jsonnet accepts: read the rest as code
    chomp = source.startswith("-", i)
    i, n = opening.end(), len(source)
    indent = ""
    lines: list[str] = []
    while i < n:
        newline = source.find("\n", i)
        end = n if newline < 0 else newline + 1
        line = source[i:end]
        if line.rstrip("\r\n") == "":
            lines.append("\n")
            i = end
            continue
        if not indent:
            indent = line[: _end(_INDENT.match(line), 0)]
            if not indent:
                return "".join(lines), i  # Jsonnet requires an indented first line
        if not line.startswith(indent):
            closing = _end(_INDENT.match(source, i), i)
            i = closing + 3 if source.startswith("|||", closing) else closing
            break
        lines.append(line[len(indent) :])
        i = end
    text = "".join(lines)
    return (text.removesuffix("\n") if chomp else text), i
