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


def test_the_six_dashboards_load_with_unique_uids() -> None:
    assert len(DASHBOARD_FILES) == len(BOARDS) == 6
    titles = {b["title"] for b in BOARDS.values()}
    assert {"Service overview", "Endpoint detail", "Exceptions", "Traces", "Logs", "Metrics"} == {
        t.split(" / ")[1] for t in titles
    }


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


def test_trace_ids_of_requests_link_to_the_logs_of_the_trace() -> None:
    for uid, title in (("otelhouse-traces", "Requests"), ("otelhouse-endpoint", "Slowest requests")):
        (p,) = [p for p in BOARDS[uid]["panels"] if p["title"] == title]
        assert any(u.startswith("/d/otelhouse-logs/logs?var-trace_id=${__value.raw}") for u in _link_urls(p)), title


def test_logs_panel_uses_the_plugins_logs_format_and_columns() -> None:
    (p,) = [p for p in BOARDS["otelhouse-logs"]["panels"] if p["type"] == "logs"]
    (target,) = p["targets"]
    assert (target["format"], target["queryType"]) == (2, "logs")
    for column in ("AS timestamp", "AS body", "AS level", "AS trace_id"):
        assert column in target["rawSql"]


def test_free_text_of_the_logs_dashboard_is_bound_percent_encoded() -> None:
    """``sqlstring`` leaves backslashes, which end a ClickHouse literal early; the Logs
    dashboard's text variables reach SQL only as ``decodeURLComponent('${x:percentencode}')``."""
    board = BOARDS["otelhouse-logs"]
    texts = [t["rawSql"] for t in walk(board, "targets") for t in t]
    for name, var in variables(board).items():
        if var["type"] in ("textbox", "custom"):
            for text in texts:
                assert f"${{{name}:sqlstring}}" not in text and f"${name} " not in text
            assert any(f"decodeURLComponent('${{{name}:percentencode}}')" in text for text in texts), name


def test_metric_and_attribute_key_of_the_metrics_dashboard_are_bound_percent_encoded() -> None:
    """Metric names and attribute keys may hold any character: they reach SQL only as
    ``decodeURLComponent('${x:percentencode}')``."""
    board = BOARDS["otelhouse-metrics"]
    texts = [t["rawSql"] for t in walk(board, "targets") for t in t]
    texts += [v["query"] for v in variables(board).values()]
    for name in ("metric", "group_by"):
        for text in texts:
            assert name not in referenced_variables(text.replace(f"${{{name}:percentencode}}", ""))
        assert any(f"decodeURLComponent('${{{name}:percentencode}}')" in text for text in texts), name


def test_clickhouse_datasource_is_in_otel_mode_on_the_otel_database() -> None:
    clickhouse = SOURCES["otelhouse-clickhouse"]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    data = clickhouse["jsonData"]
    assert data["traces"]["otelEnabled"] and data["logs"]["otelEnabled"]
    assert (data["traces"]["defaultTable"], data["logs"]["defaultTable"]) == ("otel_traces", "otel_logs")
    assert data["traces"]["otelVersion"] == data["logs"]["otelVersion"] == "latest"
    assert data["traces"]["defaultDatabase"] == data["logs"]["defaultDatabase"] == data["defaultDatabase"]
    assert SOURCES["otelhouse-jaeger"]["type"] == "jaeger"


def test_logs_columns_are_the_collector_schemas_and_trace_log_links_go_both_ways() -> None:
    """Outside OTel mode the plugin reads time, level and message from these columns; the
    "View logs" (on trace ids in trace results) and "View trace" (on trace ids in log
    results) links are the plugin's ``logs.showLogLinks`` and ``traces.showTraceLinks``."""
    data = SOURCES["otelhouse-clickhouse"]["jsonData"]
    logs, traces = data["logs"], data["traces"]
    assert (logs["timeColumn"], logs["levelColumn"], logs["messageColumn"]) == ("Timestamp", "SeverityText", "Body")
    assert logs["showLogLinks"] is True and traces["showTraceLinks"] is True


def _link_urls(node: Any) -> list[str]:
    return [url for url in walk(node, "url") if isinstance(url, str)]


def test_dashboard_provider_points_at_the_mounted_json() -> None:
    import yaml

    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "otelhouse.yaml").read_text())
    compose = yaml.safe_load((GRAFANA.parent / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
