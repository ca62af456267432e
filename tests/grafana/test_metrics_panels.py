"""The Metrics dashboard's panels and variables, expanded as Grafana and the ClickHouse plugin
expand them, run on the embedded engine over points stored with ``otelhouse.storage.metrics``,
against rates, percentiles and averages computed independently in Python and numpy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client

from otelhouse.storage.metrics import insert_metrics
from tests.grafana.dashboards import load_dashboards, panel_sql, variables
from tests.grafana.database import migrated_database
from tests.grafana.expand import TimeRange, Variable, expand
from tests.grafana.metrics_dataset import (
    HTTP,
    TRICKY_KEY,
    Increment,
    Point,
    grouped,
    increments,
    is_http_error,
    is_runtime,
    make_metrics,
    quantiles,
    runtime_series,
    to_metric_columns,
)
from tests.grafana.test_panel_sql import assert_rows

INTERVAL_S = 60
RANGE_S = 600
BOARD = load_dashboards()["otelhouse-metrics"]

Row = dict[str, Any]


@dataclass
class Loaded:
    client: Client
    points: list[Point]
    t0: int
    time_range: TimeRange

    def run(self, sql: str, values: dict[str, str]) -> list[Row]:
        assert set(values) == set(variables(BOARD)), "set every variable"
        bound = {name: Variable(value) for name, value in values.items()}
        result = self.client.query(expand(sql, bound, self.time_range))
        return [dict(zip(result.column_names, row)) for row in result.result_rows]

    def increments(self, keep: Callable[[Point], bool]) -> list[Increment]:
        chosen = [p for p in self.points if keep(p)]
        return increments(chosen, self.t0 - INTERVAL_S, self.t0, self.t0 + RANGE_S)

    def in_range(self, keep: Callable[[Point], bool]) -> list[Point]:
        return [p for p in self.points if p.recorded and self.t0 <= p.time <= self.t0 + RANGE_S and keep(p)]


@pytest.fixture(scope="module")
def loaded(data_dir: Path) -> Iterator[Loaded]:
    with migrated_database(data_dir) as client:
        t0 = int(time.time()) // INTERVAL_S * INTERVAL_S - 900
        points = make_metrics(t0)
        insert_metrics(client, to_metric_columns(points))
        time_range = TimeRange(t0 * 1000 + 250, (t0 + RANGE_S) * 1000 + 999, INTERVAL_S * 1000)
        yield Loaded(client, points, t0, time_range)


def bucket(inc: Increment | Point) -> float:
    t = inc.point.time if isinstance(inc, Increment) else inc.time
    return float(t - t % INTERVAL_S)


# ------------------------------------------------------------------ expected values


def http_expected(loaded: Loaded, v: dict[str, str], title: str) -> list[Row]:
    incs = loaded.increments(lambda p: p.service == v["service"] and p.name == HTTP and p.kind == "histogram")
    by_route = grouped(incs, lambda i: (bucket(i), i.point.attrs.get("http.route", "")))
    if title == "HTTP request rate":
        return [{"time": t, "route": r, "requests_per_s": sum(i.count for i in g) / INTERVAL_S}
                for (t, r), g in by_route.items()]
    if title == "HTTP error rate":
        return [{"time": t, "route": r,
                 "error_rate": sum(i.count for i in g if is_http_error(i.point)) / sum(i.count for i in g)}
                for (t, r), g in by_route.items() if sum(i.count for i in g) > 0]
    assert title == "HTTP latency percentiles"
    rows = [(t, r, quantiles(g, {"p50": 0.5, "p90": 0.9, "p99": 0.99})) for (t, r), g in by_route.items()]
    return [{"time": t, "route": r, **q} for t, r, q in rows if q]


def series_name(v: dict[str, str], p: Point) -> str:
    key = v["group_by"]
    return f"{key}={p.attrs.get(key, '')}" if key else p.name


def selected_expected(loaded: Loaded, v: dict[str, str]) -> list[Row]:
    kind, _, name = v["metric"].partition(":")
    keep = lambda p: p.service == v["service"] and p.kind == kind and p.name == name  # noqa: E731
    if kind == "gauge":
        by = grouped(loaded.in_range(keep), lambda p: (bucket(p), series_name(v, p)))
        return [{"time": t, "series": s, "value": float(np.mean([p.value for p in g]))} for (t, s), g in by.items()]
    by = grouped(loaded.increments(keep), lambda i: (bucket(i), series_name(v, i.point)))
    if kind == "sum":
        return [{"time": t, "series": s, "value": sum(i.value for i in g) / INTERVAL_S} for (t, s), g in by.items()]
    if kind != "histogram":
        return []
    rows = [(t, s, quantiles(g, {"value": 0.95})) for (t, s), g in by.items()]
    return [{"time": t, "series": s, **q} for t, s, q in rows if q]


def runtime_expected(loaded: Loaded, v: dict[str, str]) -> list[Row]:
    current = lambda p: p.kind == "gauge" or (p.kind == "sum" and not p.monotonic)  # noqa: E731
    values = loaded.in_range(lambda p: p.service == v["service"] and is_runtime(p.name) and current(p))
    by = grouped(values, lambda p: (bucket(p), runtime_series(p)))
    rows = [{"time": t, "series": s, "value": float(np.mean([p.value for p in g]))} for (t, s), g in by.items()]
    counters = loaded.increments(
        lambda p: p.service == v["service"] and is_runtime(p.name) and p.kind == "sum" and p.monotonic)
    by_counter = grouped(counters, lambda i: (bucket(i), runtime_series(i.point)))
    return rows + [{"time": t, "series": s, "value": sum(i.value for i in g) / INTERVAL_S}
                   for (t, s), g in by_counter.items()]


def expected(loaded: Loaded, v: dict[str, str], title: str) -> list[Row]:
    if title.startswith("HTTP"):
        return http_expected(loaded, v, title)
    if title == "Selected metric":
        return selected_expected(loaded, v)
    assert title == "Runtime metrics"
    return runtime_expected(loaded, v)


CASES = {
    "http-histogram": {"service": "shop", "metric": f"histogram:{HTTP}", "group_by": ""},
    "http-histogram-by-route": {"service": "shop", "metric": f"histogram:{HTTP}", "group_by": "http.route"},
    "delta-histogram-negative-bound": {"service": "shop", "metric": "histogram:queue.wait", "group_by": "queue"},
    "gauge-by-queue": {"service": "shop", "metric": "gauge:queue.depth", "group_by": "queue"},
    "gauge-by-quoted-key": {"service": "shop", "metric": "gauge:queue.depth", "group_by": TRICKY_KEY},
    "counter-reset-and-restart": {"service": "shop", "metric": "sum:orders.placed", "group_by": "region"},
    "delta-sum": {"service": "shop", "metric": "sum:jobs.done", "group_by": ""},
    "updown-runtime-sum": {"service": "shop", "metric": "sum:process.runtime.cpython.memory", "group_by": "type"},
    "worker-without-runtime": {"service": "worker", "metric": "gauge:worker.busy", "group_by": ""},
    "wrong-type": {"service": "shop", "metric": "gauge:orders.placed", "group_by": ""},
    "nothing": {"service": "nobody", "metric": "", "group_by": ""},
}
TITLES = [p["title"] for p in BOARD["panels"]]


@pytest.mark.parametrize("title", TITLES)
@pytest.mark.parametrize("case", CASES)
def test_panel_shows_the_values_of_the_points(loaded: Loaded, case: str, title: str) -> None:
    values = CASES[case]
    actual = loaded.run(panel_sql(BOARD, title), values)
    assert_rows(actual, expected(loaded, values, title), ordered=False)


def test_cases_are_not_vacuous(loaded: Loaded) -> None:
    """Each scenario the cases name is in the data and reaches a panel."""
    for case in ("http-histogram", "gauge-by-quoted-key", "counter-reset-and-restart", "delta-sum",
                 "delta-histogram-negative-bound", "updown-runtime-sum", "worker-without-runtime"):
        assert selected_expected(loaded, CASES[case]), case
    assert runtime_expected(loaded, CASES["http-histogram"])
    assert not runtime_expected(loaded, CASES["worker-without-runtime"])
    http = http_expected(loaded, CASES["http-histogram"], "HTTP error rate")
    assert {r["route"] for r in http} == {"/cart", "/orders"}
    assert any(0 < r["error_rate"] < 1 for r in http)
    incs = loaded.increments(lambda p: p.name in (HTTP, "orders.placed", "process.cpu.time"))
    resets = [i for i in incs if i.point.start < loaded.t0 and i.count == sum(i.point.counts) and i.count > 0]
    assert resets, "a histogram reset or restart is in range"
    assert any(i.value == i.point.value and i.point.kind == "sum" and i.value > 0 for i in incs)


def test_variables_list_services_metrics_with_types_and_attribute_keys(loaded: Loaded) -> None:
    defined = variables(BOARD)
    shop = {"service": "shop", "metric": "gauge:queue.depth", "group_by": ""}
    services = loaded.run(defined["service"]["query"], shop)
    in_range = {p.service for p in loaded.points if loaded.t0 <= p.time <= loaded.t0 + RANGE_S}
    assert [r["ServiceName"] for r in services] == sorted(in_range)
    metrics = loaded.run(defined["metric"]["query"], shop)
    names = sorted({(p.name, p.kind) for p in loaded.points
                    if p.service == "shop" and loaded.t0 <= p.time <= loaded.t0 + RANGE_S})
    assert metrics == [{"__text": f"{n} ({k})", "__value": f"{k}:{n}"} for n, k in names]
    keys = loaded.run(defined["group_by"]["query"], shop)
    assert keys == [{"__text": "none", "__value": ""}, *({"__text": k, "__value": k} for k in sorted(["queue", TRICKY_KEY]))]
