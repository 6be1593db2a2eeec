"""The import graph of `app/` (issue 11): dependencies point inward, and there are no cycles.

Layers, inner to outer: `domain`, `settings` and `setting_files` (pure), `topic_catalog`
(names of Kafka things), `transport` and `devtools` (Kafka, HTTP, processes), `delivery` (one job's
delivery), `agents` (the services a worker runs), `usecases` (the operations the CLI and the
API share, issue 14), `main`, `api` and `cli` (entry points).
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
RANK = {
    "domain": 0,
    "settings": 0,
    "setting_files": 0,
    "topic_catalog": 1,
    "transport": 2,
    "devtools": 2,
    "delivery": 3,
    "agents": 4,
    "usecases": 5,
    "main": 6,
    "api": 6,
    "cli": 7,
}


def imports() -> dict[str, set[str]]:
    """Module -> the `app.*` modules it imports from."""
    out: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        mod = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
        targets = out.setdefault(mod, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app."):
                targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("app."))
    return out


def layer(module: str) -> str:
    return module.split(".")[1]


def test_every_module_belongs_to_a_layer() -> None:
    assert {layer(m) for m in imports() if m.count(".")} <= set(RANK) | {"__init__"}


def test_no_module_imports_from_an_outer_layer() -> None:
    upward = [
        f"{mod} imports {target}"
        for mod, targets in imports().items()
        for target in targets
        if mod.count(".") and RANK.get(layer(target), 0) > RANK.get(layer(mod), 99)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycles() -> None:
    graph = imports()
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert cycles == []
