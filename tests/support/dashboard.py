"""The metric names a Grafana dashboard's PromQL uses (`deploy/grafana/audience-webhooks.json`),
so a test can check each against what a worker exposes. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

METRIC = re.compile(r"\b(webhooks_[a-z0-9_]+)\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exprs(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression: panels' targets (nested in rows too) and query variables."""
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield str(target["expr"])
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and isinstance(query, str):
            yield query


def used_metrics(dashboard: dict[str, Any]) -> set[str]:
    return {name for expr in exprs(dashboard) for name in METRIC.findall(expr)}


def exposed_names(exposition: str) -> set[str]:
    """Sample names a `/metrics` text can hold: each `# TYPE` family, and a histogram's
    `_bucket`, `_sum` and `_count`."""
    names: set[str] = set()
    for line in exposition.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            names.add(parts[2])
            if parts[3] == "histogram":
                names.update(parts[2] + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names
