"""The dashboards as files: generated from grafana/build.py, loadable, and consistent with the
provisioned datasources, their own variables and each other's links."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from tests.grafana.dashboards import (
    DASHBOARD_FILES,
    GRAFANA,
    load_build_module,
    load_dashboards,
    provisioned_datasources,
    referenced_variables,
    variables,
    walk,
)

BOARDS = load_dashboards()
SOURCES = {s["uid"]: s for s in provisioned_datasources()}
BOARD_IDS = sorted(BOARDS)


def test_committed_json_is_what_build_py_generates() -> None:
    rendered = load_build_module().render()
    committed = {path.name: path.read_text(encoding="utf-8") for path in DASHBOARD_FILES}
    assert committed == rendered, "run: python grafana/build.py"


def test_the_four_dashboards_load_with_unique_uids() -> None:
    assert len(DASHBOARD_FILES) == len(BOARDS) == 4
    titles = {b["title"] for b in BOARDS.values()}
    assert {"Service overview", "Endpoint detail", "Exceptions", "Traces"} == {t.split(" / ")[1] for t in titles}


@pytest.mark.parametrize("uid", BOARD_IDS)
def test_panels_are_laid_out_and_query_with_sql(uid: str) -> None:
    board = BOARDS[uid]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, p["title"]
        assert p["targets"] and len({t["refId"] for t in p["targets"]}) == len(p["targets"])
        for target in p["targets"]:
            assert target["editorType"] == "sql"
            assert target["rawSql"].startswith(("SELECT", "WITH"))
            assert "otel." not in target["rawSql"], "tables are named without a database"


@pytest.mark.parametrize("uid", BOARD_IDS)
def test_every_datasource_referenced_is_provisioned(uid: str) -> None:
    board = BOARDS[uid]
    references = [d for d in walk(board, "datasource") if isinstance(d, dict)]
    for url in _link_urls(board):
        if url.startswith("/explore"):
            panes = json.loads(unquote(dict(parse_qsl(urlsplit(url).query))["panes"]))
            references += list(walk(panes, "datasource"))
    assert references
    for ref in references:
        uid_ = ref if isinstance(ref, str) else ref["uid"]
        assert uid_ in SOURCES, f"{uid}: datasource {uid_} is not provisioned"
        if isinstance(ref, dict):
            assert ref["type"] == SOURCES[uid_]["type"]


@pytest.mark.parametrize("uid", BOARD_IDS)
def test_every_variable_used_is_defined(uid: str) -> None:
    board = BOARDS[uid]
    defined = variables(board)
    texts = [t["rawSql"] for t in walk(board, "targets") for t in t]
    texts += [v["query"] for v in defined.values() if v["type"] == "query"]
    texts += _link_urls(board)
    used = set().union(*(referenced_variables(t) for t in texts))
    assert used <= set(defined), f"{uid}: undefined {used - set(defined)}"
    for name, var in defined.items():
        if var["type"] == "query":
            assert referenced_variables(var["query"]) <= set(defined) - {name}


@pytest.mark.parametrize("uid", BOARD_IDS)
def test_links_open_existing_dashboards_with_their_variables(uid: str) -> None:
    for url in _link_urls(BOARDS[uid]):
        parts = urlsplit(url)
        if parts.path.startswith("/explore"):
            continue
        target_uid = parts.path.split("/")[2]
        assert target_uid in BOARDS, url
        params = {k for k, _ in parse_qsl(parts.query)} | {
            ref.split(":")[0] for ref in referenced_variables(parts.query)
        }
        target_vars = {k.removeprefix("var-") for k in params if k.startswith("var-")}
        target_vars |= referenced_variables(parts.query)
        assert target_vars <= set(variables(BOARDS[target_uid])), url


def test_trace_ids_link_to_the_trace_view() -> None:
    for board in BOARDS.values():
        for p in board["panels"]:
            columns = p["targets"][0]["rawSql"]
            if "AS trace_id" in columns or "AS sample_trace" in columns:
                urls = _link_urls(p)
                assert any("/d/otelhouse-traces/" in u and "var-trace_id=" in u for u in urls), p["title"]


def test_clickhouse_datasource_is_in_otel_mode_on_the_otel_database() -> None:
    clickhouse = SOURCES["otelhouse-clickhouse"]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    data = clickhouse["jsonData"]
    assert data["traces"]["otelEnabled"] and data["logs"]["otelEnabled"]
    assert (data["traces"]["defaultTable"], data["logs"]["defaultTable"]) == ("otel_traces", "otel_logs")
    assert SOURCES["otelhouse-jaeger"]["type"] == "jaeger"


def _link_urls(node: Any) -> list[str]:
    return [url for url in walk(node, "url") if isinstance(url, str)]


def test_dashboard_provider_points_at_the_mounted_json() -> None:
    import yaml

    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "otelhouse.yaml").read_text())
    compose = yaml.safe_load((GRAFANA.parent / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
