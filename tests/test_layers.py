"""The floors of the house (docs/architecture.md): every import of otelhouse code runs down.

Read from the source with ``ast``, so an import inside a function or under ``TYPE_CHECKING``
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FOLDERS = {
    "core": "otelhouse.core",
    "storage": "otelhouse.storage",
    "receiver": "otelhouse.receiver",
    "query": "otelhouse.query",
    "alerts": "otelhouse.alerts",
    "instrumentation": "otelhouse.instrumentation",
    "otelhouse": "otelhouse",
}
"""Each folder and the package it installs as."""

MAY_IMPORT = {
    "otelhouse.core": {"otelhouse.core"},
    "otelhouse.storage": {"otelhouse.core", "otelhouse.storage"},
    "otelhouse.receiver": {"otelhouse.core", "otelhouse.storage", "otelhouse.receiver"},
    "otelhouse.query": {"otelhouse.core", "otelhouse.storage", "otelhouse.query"},
    "otelhouse.alerts": {"otelhouse.core", "otelhouse.storage", "otelhouse.alerts"},
    "otelhouse.instrumentation": {"otelhouse.instrumentation"},
    "otelhouse": None,
}
"""What each component may import of otelhouse; ``None`` for the roof, which composes them."""


def component_of(module: str) -> str:
    """The component a dotted ``otelhouse`` module name belongs to."""
    return max((c for c in MAY_IMPORT if module == c or module.startswith(c + ".")), key=len)


def source_files() -> list[tuple[str, Path]]:
    tracked = subprocess.run(
        ["git", "ls-files", "--", *(f"{folder}/*.py" for folder in FOLDERS)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [(FOLDERS[path.split("/")[0]], ROOT / path) for path in tracked]


def otelhouse_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "otelhouse"]


FILES = source_files()


def test_the_layer_table_covers_every_source_folder() -> None:
    assert {package for package, _ in FILES} == set(FOLDERS.values())


@pytest.mark.parametrize(
    ("package", "path"), FILES, ids=[str(path.relative_to(ROOT)) for _, path in FILES]
)
def test_imports_run_only_down(package: str, path: Path) -> None:
    own = component_of(package)
    allowed = MAY_IMPORT[own]
    if allowed is None:
        return
    upward = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for line, name in otelhouse_imports(path)
        if component_of(name) not in allowed
    ]
    assert upward == []
