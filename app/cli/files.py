"""Reading config files (YAML or JSON, one or several documents) for `apply` commands.

YAML anchors and aliases are allowed for sharing a value, within a budget: a file whose
aliases expand to more than `MAX_EXPANDED_NODES` nodes (a "billion laughs" of nested
aliases: 476 bytes that expand to hundreds of millions of values) is refused before it
is built, with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# A job or authorization document has tens of nodes; a file of hundreds of them stays far
# below this, and a nested-alias bomb goes past it after a few levels.
MAX_EXPANDED_NODES = 100_000
MAX_FILE_BYTES = 4 * 1024 * 1024


class ConfigFileError(ValueError):
    """A file that cannot be read or parsed; the message names the file and the place."""


def expanded_size(node: yaml.Node, budget: int) -> int:
    """How many nodes `node` stands for once its aliases are expanded, counted up to just
    past `budget` (an alias's node is counted each time it is used: that is what building
    the document costs)."""
    count = 0
    stack = [node]
    while stack and count <= budget:
        current = stack.pop()
        count += 1
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
    return count


def _safe_documents(path: Path, text: str) -> list[Any]:
    loader = yaml.SafeLoader(text)
    try:
        docs: list[Any] = []
        budget = MAX_EXPANDED_NODES
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            size = expanded_size(node, budget)
            if size > budget:
                raise ConfigFileError(
                    f"{path}: its YAML aliases expand to more than {MAX_EXPANDED_NODES} "
                    "values; refused (write the values out, or use fewer nested aliases)"
                )
            budget -= size
            docs.append(loader.construct_document(node))
        return docs
    finally:
        loader.dispose()


def load_documents(path: Path) -> list[Any]:
    """Every document in a YAML/JSON file; a top-level list counts as several documents."""
    try:
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigFileError(f"{path}: larger than {MAX_FILE_BYTES // 1024 // 1024} MiB")
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"{path}: not UTF-8 text") from None
    try:
        docs = [d for d in _safe_documents(path, text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML/JSON ({exc})") from None
    except RecursionError:
        raise ConfigFileError(f"{path}: nested too deeply") from None
    if len(docs) == 1 and isinstance(docs[0], list):
        docs = docs[0]
    if not docs:
        raise ConfigFileError(f"{path}: holds no document")
    return docs
