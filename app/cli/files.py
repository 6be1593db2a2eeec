"""Reading config files (YAML or JSON, one or several documents) for `apply` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigFileError(ValueError):
    """A file that cannot be read or parsed; the message names the file and the place."""


def load_documents(path: Path) -> list[Any]:
    """Every document in a YAML/JSON file; a top-level list counts as several documents."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML/JSON ({exc})") from None
    if len(docs) == 1 and isinstance(docs[0], list):
        docs = docs[0]
    if not docs:
        raise ConfigFileError(f"{path}: holds no document")
    return docs
