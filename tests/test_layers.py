"""Floors import only downward: core <- storage <- receiver, query <- the roof (otelhouse/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED: dict[str, tuple[str, ...]] = {
    "core": ("otelhouse.core",),
    "storage": ("otelhouse.core", "otelhouse.storage"),
    "query": ("otelhouse.core", "otelhouse.storage", "otelhouse.query"),
}


def otelhouse_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "otelhouse" or name.startswith("otelhouse.")}


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_floor_imports_only_downward(folder: str) -> None:
    upward = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / folder).rglob("*.py")
        for name in otelhouse_imports(path)
        if not any(name == a or name.startswith(f"{a}.") for a in ALLOWED[folder])
    }
    assert upward == set()
