"""Request-level RED and the service map over cross-service traces: every number a service
table shows is over that service's entry spans, and the edges are the calls exactly."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from otelhouse.storage.tables import SERVICE_EDGES_TABLE
from otelhouse.storage.traces import insert_spans
from tests.query.cross_service import (
    CrossService,
    build,
    is_request,
    pause_rollup,
    refresh_rollup,
    status_counts,
)
from tests.query.spans import assert_percentiles
from tests.query.trace_builder import to_columns

LEVELS = (0.5, 0.9, 0.95, 0.99)


@pytest.fixture
def cross(storage: Client) -> CrossService:
    """The traces, stored as if they had arrived in time (see ``pause_rollup``)."""
    data = build()
    insert_spans(storage, to_columns(data.spans))
    pause_rollup(storage)
    return data


def test_services_count_requests_only(api: TestClient, cross: CrossService) -> None:
    body = api.get("/api/v1/services", params=cross.params).json()
    rows = {row["service"]: row for row in body["services"]}
    assert sorted(rows) == ["audit", "inventory", "pricing", "shop"]
    for service, row in rows.items():
        requests = cross.requests(service)
        errors = sum(s.is_error for s in requests)
        assert row["spans"] == sum(s.service == service for s in cross.spans)
        assert (row["requests"], row["errors"]) == (len(requests), errors)
        assert row["error_rate"] == errors / len(requests)
        starts = [s.start_ns for s in requests]
        active = max((max(starts) - min(starts)) / 1e9, 1.0)
        assert row["rate_per_s"] == pytest.approx(len(requests) / active)
        assert_percentiles(
            [row[f"p{round(q * 100)}_ms"] for q in LEVELS],
            [s.duration_ns for s in requests],
            LEVELS,
        )
    shop_spans = [s for s in cross.spans if s.service == "shop"]
    assert sum(s.is_error for s in shop_spans) > rows["shop"]["errors"], "calls fail too"


def test_summary_agrees_with_services(api: TestClient, cross: CrossService) -> None:
    services = api.get("/api/v1/services", params=cross.params).json()["services"]
    for row in services:
        summary = api.get(
            "/api/v1/summary", params={**cross.params, "service": row["service"]}
        ).json()
        for field in ("requests", "errors", "error_rate", "rate_per_s"):
            assert summary[field] == pytest.approx(row[field]), field


def test_errors_by_status_are_the_requests_own(api: TestClient, cross: CrossService) -> None:
    body = api.get(
        "/api/v1/errors", params={**cross.params, "service": "shop", "group_by": "status_code"}
    ).json()
    requests = cross.requests("shop")
    assert (body["requests"], body["errors"]) == (len(requests), sum(s.is_error for s in requests))
    failed = status_counts([s for s in requests if s.is_error])
    assert {g["status_code"]: g["errors"] for g in body["groups"]} == dict(failed)
    assert 404 not in failed and 409 not in failed


def test_operations_show_outgoing_calls_by_kind(api: TestClient, cross: CrossService) -> None:
    rows = api.get(
        "/api/v1/operations", params={**cross.params, "service": "shop", "kind": "Client"}
    ).json()["operations"]
    calls = [s for s in cross.spans if s.service == "shop" and s.kind == "Client"]
    assert {(r["operation"], r["kind"]): r["spans"] for r in rows} == {
        (name, "Client"): sum(s.name == name for s in calls) for name in {s.name for s in calls}
    }
    assert sum(r["errors"] for r in rows) == sum(s.is_error for s in calls)
    every = api.get("/api/v1/operations", params={**cross.params, "service": "shop"}).json()
    assert {r["kind"] for r in every["operations"]} == {"Server", "Client", "Internal"}


def test_latency_series_counts_requests(api: TestClient, cross: CrossService) -> None:
    body = api.get(
        "/api/v1/latency", params={**cross.params, "service": "inventory", "step": "60"}
    ).json()
    assert sum(b["requests"] for b in body["buckets"]) == len(cross.requests("inventory"))
    assert sum(b["errors"] for b in body["buckets"]) == sum(
        s.is_error for s in cross.requests("inventory")
    )


def test_service_map_edges(api: TestClient, cross: CrossService) -> None:
    body = api.get("/api/v1/service-map", params=cross.params).json()
    expected = cross.edges()
    assert [(e["caller"], e["callee"]) for e in body["edges"]] == sorted(expected)
    assert set(expected) == {
        ("shop", "inventory"),
        ("shop", "pricing"),
        ("shop", "payments.example.com"),
        ("inventory", "postgres"),
        ("inventory", "audit"),
    }
    for edge in body["edges"]:
        calls = expected[edge["caller"], edge["callee"]]
        errors = sum(s.is_error for s in calls)
        assert (edge["calls"], edge["errors"]) == (len(calls), errors)
        assert edge["error_rate"] == errors / len(calls)
        assert_percentiles([edge["p95_ms"]], [s.duration_ns for s in calls], [0.95])


def test_service_map_from_the_rollup_equals_the_live_join(
    api: TestClient, cross: CrossService, storage: Client
) -> None:
    live = api.get("/api/v1/service-map", params=cross.params).json()["edges"]
    refresh_rollup(storage)
    rolled = storage.query(
        f"SELECT sum(Calls), uniqExact(Timestamp) FROM {SERVICE_EDGES_TABLE} WHERE Caller != ''"
    ).result_rows[0]
    assert rolled[0] > 0 and rolled[1] > 1, "the rollup covered some of the calls"
    merged = api.get("/api/v1/service-map", params=cross.params).json()["edges"]
    expected = cross.edges()
    for before, after in zip(live, merged, strict=True):
        calls = expected[after["caller"], after["callee"]]
        assert_percentiles([after.pop("p95_ms")], [s.duration_ns for s in calls], [0.95])
        before.pop("p95_ms")
        assert before == after
    refresh_rollup(storage)
    again = api.get("/api/v1/service-map", params=cross.params).json()["edges"]
    assert [e["calls"] for e in again] == [e["calls"] for e in merged], "minutes rolled once"


def test_jaeger_dependencies(api: TestClient, cross: CrossService) -> None:
    response = api.get(
        "/jaeger/api/dependencies",
        params={"endTs": cross.end_ms, "lookback": cross.end_ms - cross.start_ms},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "total", "limit", "offset", "errors"}
    assert body["errors"] is None
    expected = cross.edges()
    assert body["data"] == [
        {"parent": caller, "child": callee, "callCount": len(expected[caller, callee])}
        for caller, callee in sorted(expected)
    ]
    default = api.get("/jaeger/api/dependencies").json()["data"]
    assert default == body["data"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"endTs": "soon"}, "endTs"),
        ({"endTs": "999999999999999"}, "endTs"),
        ({"lookback": "1h"}, "lookback"),
        ({"lookback": "0"}, "lookback"),
        ({"lookback": str(32 * 86_400_000)}, "lookback"),
    ],
)
def test_jaeger_dependencies_rejects_bad_parameters(
    api: TestClient, params: dict, parameter: str
) -> None:
    response = api.get("/jaeger/api/dependencies", params=params)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["code"] == 400 and error["msg"].startswith(parameter)


def test_entry_spans_are_the_rule(cross: CrossService, storage: Client) -> None:
    rows = storage.query("SELECT SpanId, IsRequest FROM otel_traces").result_rows
    stored = dict(rows)
    assert {s.span_id: int(is_request(s)) for s in cross.spans} == stored
