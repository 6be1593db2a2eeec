"""What the container image is built from (issue 12, item 6): a lock file with a hash for
every package, pinned to the versions `pyproject.toml` names, and no test or demo code."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def locked() -> dict[str, tuple[str, int]]:
    """Package -> (version, number of hashes) from requirements.lock."""
    out: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\]+)", line)
        if pin:
            current = pin[1].split("[")[0].lower().replace("_", "-")
            out[current] = (pin[2], 0)
        elif "--hash=sha256:" in line and current:
            version, hashes = out[current]
            out[current] = (version, hashes + 1)
    return out


def test_every_locked_package_has_a_hash() -> None:
    lock = locked()
    assert len(lock) > 20  # the whole transitive tree, not just the direct dependencies
    assert [name for name, (_, hashes) in lock.items() if hashes == 0] == []


def test_the_lock_pins_what_pyproject_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = locked()
    for requirement in project["dependencies"]:
        name = re.split(r"[=<>!~\[ ]", requirement, maxsplit=1)[0]
        key = name.lower().replace("_", "-")
        assert key in lock, f"{key} is not in requirements.lock"
        _, sep, version = requirement.partition("==")
        if sep:
            got = lock[key][0]
            assert got == version.strip(), f"{key}: pyproject {version}, lock {got}"


def test_test_and_demo_code_stay_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"tests", "bench", "scripts", "app/devtools"} <= ignored
    for path in (ROOT / "app").rglob("*.py"):
        if "devtools" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("app.devtools"), f"{path} imports devtools"
