"""``/api/v1/metrics`` and ``/api/v1/metrics/query`` on points stored through the metrics
signal's own conversion: gauges, counter rate and increase across a reset and a restart, delta
sums, histogram percentiles against an independent numpy interpolation, group_by/where, 422s
and the injection corpus."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from otelhouse.receiver.limits import DEFAULT_LIMITS
from otelhouse.receiver.metric_points import convert_metrics_request
from otelhouse.storage.metrics import insert_metrics
from tests.histogram_quantile import interpolated
from tests.query.hostile import INJECTION_CORPUS, long_urls  # noqa: F401 - fixture
from tests.query.test_injection import get

STEP = 60
T0 = (int(time.time()) // STEP) * STEP - 600
BOUNDS = [1.0, 5.0, 10.0]
CUMULATIVE, DELTA = 2, 1


def at(offset: int) -> int:
    return (T0 + offset) * 10**9


def attrs(**values: str) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"string_value": v}} for k, v in values.items()]


def counter_points() -> list[dict[str, Any]]:
    """Cumulative, started 30 s before T0: +20, +20, a reset to 5, then +10 (new start)."""
    start, restart = at(-30), at(95)
    return [
        {"time_unix_nano": at(10), "start_time_unix_nano": start, "as_int": 10},
        {"time_unix_nano": at(40), "start_time_unix_nano": start, "as_int": 30},
        {"time_unix_nano": at(70), "start_time_unix_nano": start, "as_int": 50},
        {"time_unix_nano": at(100), "start_time_unix_nano": restart, "as_int": 5},
        {"time_unix_nano": at(130), "start_time_unix_nano": restart, "as_int": 15},
    ]


def histogram(offset: int, counts: list[int], total: float, **labels: str) -> dict[str, Any]:
    return {
        "time_unix_nano": at(offset), "start_time_unix_nano": at(-30), "count": sum(counts),
        "sum": total, "bucket_counts": counts, "explicit_bounds": BOUNDS,
        "attributes": attrs(**labels),
    }


def request() -> ExportMetricsServiceRequest:
    gauge = [
        {"time_unix_nano": at(5), "as_double": 1.0, "attributes": attrs(room="x")},
        {"time_unix_nano": at(30), "as_double": 5.0, "attributes": attrs(room="x")},
        {"time_unix_nano": at(50), "as_int": 3, "attributes": attrs(room="x")},
        {"time_unix_nano": at(10), "as_double": 10.0, "attributes": attrs(room="y")},
        {"time_unix_nano": at(20), "as_double": float("nan"), "attributes": attrs(room="x")},
        {"time_unix_nano": at(25), "as_double": 100.0, "flags": 1, "attributes": attrs(room="x")},
    ]
    jobs = [
        {"time_unix_nano": at(10), "as_int": 3},
        {"time_unix_nano": at(20), "as_int": 4},
        {"time_unix_nano": at(70), "as_int": 6},
    ]
    histograms = [
        histogram(10, [1, 2, 1, 0], 10.0, route="/a"),
        histogram(40, [2, 5, 3, 1], 60.0, route="/a"),
    ]
    metrics = [
        {"name": "temperature", "unit": "Cel", "gauge": {"data_points": gauge}},
        {"name": "requests", "description": "served", "sum": {
            "aggregation_temporality": CUMULATIVE, "is_monotonic": True,
            "data_points": counter_points()}},
        {"name": "jobs", "sum": {
            "aggregation_temporality": DELTA, "is_monotonic": True, "data_points": jobs}},
        {"name": "latency", "unit": "ms", "histogram": {
            "aggregation_temporality": CUMULATIVE, "data_points": histograms}},
        {"name": "latency", "histogram": {
            "aggregation_temporality": DELTA,
            "data_points": [histogram(20, [0, 0, 4, 0], 28.0, route="/b")]}},
    ]
    return ExportMetricsServiceRequest(resource_metrics=[{
        "resource": {"attributes": attrs(**{"service.name": "shop"})},
        "scope_metrics": [{"metrics": metrics}],
    }])


@pytest.fixture
def points(storage: Client) -> None:
    converted = convert_metrics_request(request())
    assert converted.rejected == 0
    insert_metrics(storage, converted.metrics)


def query(
    api: TestClient, name: str, start: int = -60, expect: int = 200, **params: Any
) -> dict[str, Any]:
    response = api.get("/api/v1/metrics/query", params={
        "name": name, "start": (T0 + start) * 1000, "end": (T0 + 300) * 1000, "step": STEP,
        **params,
    })
    assert response.status_code == expect, response.text
    return response.json()


def points_of(body: dict[str, Any]) -> dict[tuple[tuple[str, str], ...], dict[int, float]]:
    return {
        tuple(sorted(s["labels"].items())): {t - T0: v for t, v in s["points"]}
        for s in body["series"]
    }


def test_catalogue(api: TestClient, points: None) -> None:
    body = api.get("/api/v1/metrics", params={"since": "1h"}).json()
    found = {(m["name"], m["type"]): m for m in body["metrics"]}
    assert list(found) == [
        ("jobs", "sum"), ("latency", "histogram"), ("requests", "sum"), ("temperature", "gauge")
    ]
    requests = found[("requests", "sum")]
    assert (requests["monotonic"], requests["temporality"]) == (True, "cumulative")
    assert requests["description"] == "served" and requests["services"] == ["shop"]
    assert found[("temperature", "gauge")]["attribute_keys"] == ["room"]
    assert found[("temperature", "gauge")]["unit"] == "Cel"
    assert found[("temperature", "gauge")]["monotonic"] is None
    assert api.get("/api/v1/metrics", params={"service": "other"}).json()["metrics"] == []


def test_gauge_aggregations_group_by_and_where(api: TestClient, points: None) -> None:
    expected = {"avg": 3.0, "min": 1.0, "max": 5.0, "last": 3.0}
    for agg, value in expected.items():
        body = query(api, "temperature", agg=agg, group_by="room")
        assert body["type"] == "gauge"
        assert points_of(body) == {(("room", "x"),): {0: value}, (("room", "y"),): {0: 10.0}}
    assert points_of(query(api, "temperature"))[()] == {0: 4.75}
    assert points_of(query(api, "temperature", where="room:y")) == {(): {0: 10.0}}
    assert query(api, "temperature", where="room:z")["series"] == []


def test_counter_increase_and_rate_across_reset_and_restart(
    api: TestClient, points: None
) -> None:
    increase = {0: 30.0, 60: 25.0, 120: 10.0}
    assert points_of(query(api, "requests", agg="increase")) == {(): increase}
    assert points_of(query(api, "requests", agg="rate")) == {
        (): {t: v / STEP for t, v in increase.items()}
    }
    late = points_of(query(api, "requests", start=60, agg="increase"))
    assert late == {(): {60: 25.0, 120: 10.0}}
    assert points_of(query(api, "jobs", agg="increase")) == {(): {0: 7.0, 60: 6.0}}


def test_histogram_percentiles_avg_and_rate(api: TestClient, points: None) -> None:
    per_route = {"/a": [2, 5, 3, 1], "/b": [0, 0, 4, 0]}
    for agg, q in {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}.items():
        grouped = points_of(query(api, "latency", agg=agg, group_by="route"))
        assert grouped == {
            (("route", route),): {0: pytest.approx(interpolated(counts, BOUNDS, q))}
            for route, counts in per_route.items()
        }
        overall = points_of(query(api, "latency", agg=agg))
        total = list(np.add(per_route["/a"], per_route["/b"]))
        assert overall == {(): {0: pytest.approx(interpolated(total, BOUNDS, q))}}
    assert points_of(query(api, "latency", agg="avg", where="route:/a")) == {
        (): {0: pytest.approx(60.0 / 11)}
    }
    assert points_of(query(api, "latency", agg="rate")) == {(): {0: pytest.approx(15 / STEP)}}
    assert query(api, "latency")["agg"] == "p50"


def test_bad_parameters_are_422_naming_them(api: TestClient, points: None) -> None:
    cases = {
        "name": {"name": "nope"},
        "agg": {"name": "temperature", "agg": "rate"},
        "step": {"name": "temperature", "step": "0"},
        "group_by": {"name": "temperature", "group_by": ["a", "b", "c", "d", "e", "f"]},
        "where": {"name": "temperature", "where": "no-colon"},
    }
    for parameter, params in cases.items():
        response = api.get("/api/v1/metrics/query", params=params)
        assert response.status_code == 422, parameter
        assert ["query", parameter] in [d["loc"] for d in response.json()["detail"]]


def test_every_new_parameter_takes_the_injection_corpus(
    api: TestClient, storage: Client, points: None, long_urls: None  # noqa: F811
) -> None:
    hostile = [
        {"time_unix_nano": at(10 + i), "as_double": float(i), "attributes": [
            {"key": "k", "value": {"string_value": text}},
        ]}
        for i, text in enumerate(INJECTION_CORPUS)
    ]
    converted = convert_metrics_request(ExportMetricsServiceRequest(resource_metrics=[{
        "scope_metrics": [{"metrics": [{"name": "hostile", "gauge": {"data_points": hostile}}]}]
    }]))
    insert_metrics(storage, converted.metrics)
    window = {"start": (T0 - 60) * 1000, "end": (T0 + 300) * 1000}
    for i, text in enumerate(INJECTION_CORPUS):
        label = text[:40]
        status, body = get(api.app, "/api/v1/metrics/query", {
            "name": "hostile", "where": f"k:{text}", "agg": "max", "step": STEP, **window,
        })
        stored = [[[T0, float(i)]]] if len(text) < DEFAULT_LIMITS.max_value_bytes else []
        assert status == 200 and [s["points"] for s in body["series"]] == stored, label
        status, body = get(api.app, "/api/v1/metrics/query", {
            "name": "hostile", "group_by": text, **window,
        })
        assert status == 200 and [s["labels"] for s in body["series"]] == [{text: ""}], label
        for path, params in (
            ("/api/v1/metrics", {"service": text}),
            ("/api/v1/metrics/query", {"name": "hostile", "service": text}),
        ):
            status, body = get(api.app, path, {**params, **window})
            assert status == 200, (path, label)
        for parameter in ("name", "agg", "step", "since", "start", "end", "where"):
            params = {"name": "hostile", parameter: text}
            status, body = get(api.app, "/api/v1/metrics/query", params)
            if parameter == "where" and ":" in text:
                assert status == 200, (parameter, label)
                continue
            assert status == 422, (parameter, label)
            assert ["query", parameter] in [d["loc"] for d in body["detail"]], (parameter, label)


def test_exponential_histogram_and_summary_avg_and_rate(api: TestClient, storage: Client) -> None:
    def point(offset: int, count: int, total: float) -> dict[str, Any]:
        return {"time_unix_nano": at(offset), "start_time_unix_nano": at(-30),
                "count": count, "sum": total}

    metrics = [
        {"name": "sizes", "exponential_histogram": {
            "aggregation_temporality": CUMULATIVE,
            "data_points": [point(10, 4, 8.0), point(40, 10, 32.0)]}},
        {"name": "rpc", "summary": {"data_points": [point(10, 2, 3.0), point(70, 6, 11.0)]}},
    ]
    converted = convert_metrics_request(ExportMetricsServiceRequest(
        resource_metrics=[{"scope_metrics": [{"metrics": metrics}]}]
    ))
    insert_metrics(storage, converted.metrics)
    assert points_of(query(api, "sizes", agg="avg")) == {(): {0: 32.0 / 10}}
    assert points_of(query(api, "sizes", agg="rate")) == {(): {0: 10 / STEP}}
    assert points_of(query(api, "rpc", agg="avg")) == {(): {0: 1.5, 60: 2.0}}
    body = query(api, "rpc", agg="p99", expect=422)
    assert ["query", "agg"] in [d["loc"] for d in body["detail"]]
