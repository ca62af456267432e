"""Read the committed dashboards and provisioning files the way Grafana would find them."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))


def load_build_module() -> ModuleType:
    """grafana/build.py, which is a script, not a package."""
    spec = importlib.util.spec_from_file_location("otelhouse_grafana_build", GRAFANA / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard by uid."""
    boards = [json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARD_FILES]
    return {board["uid"]: board for board in boards}


def provisioned_datasources() -> list[dict[str, Any]]:
    sources = []
    for path in sorted((GRAFANA / "provisioning" / "datasources").glob("*.yaml")):
        sources += yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    return sources


def panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    matches = [p for p in board["panels"] if p["title"] == title]
    assert len(matches) == 1, f"{board['uid']}: expected one panel titled {title!r}"
    return matches[0]


def panel_sql(board: dict[str, Any], title: str, ref_id: str | None = None) -> str:
    """The SQL of a panel's only query, or of its query ``ref_id`` when it has several."""
    targets = panel(board, title)["targets"]
    if ref_id is None:
        (target,) = targets
        return target["rawSql"]
    (target,) = [t for t in targets if t["refId"] == ref_id]
    return target["rawSql"]


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def walk(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under ``key`` anywhere in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


_REFERENCE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::\w+)?\]\]|\$\{(\w+)(?:\.[^:^}]+)?(?::[^}]+)?\}")


def referenced_variables(text: str) -> set[str]:
    """Names of template variables a string uses; Grafana's built-ins (``__*``) excluded."""
    names = {next(g for g in m.groups() if g) for m in _REFERENCE.finditer(text)}
    return {n for n in names if not n.startswith("__")}
