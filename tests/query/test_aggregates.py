"""Every aggregate endpoint against numbers computed independently from the spans sent:
exact counts and rates, percentiles within the documented 1% bound (numpy)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from otelhouse.storage.traces import insert_spans
from tests.query.spans import Span, Window, assert_percentiles, generate, to_columns

LEVELS = (0.5, 0.9, 0.95, 0.99)
PERCENTILE_FIELDS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")


@dataclass(frozen=True)
class Dataset:
    spans: list[Span]
    window: Window


@pytest.fixture
def dataset(storage: Client) -> Dataset:
    """3000 spans inside the last hour, plus 200 older ones that no answer may count."""
    window = Window.last(60)
    inside = generate(3000, start_ns=window.start_ns, end_ns=time.time_ns(), seed=1)
    before = generate(200, start_ns=window.start_ns - 10**12, end_ns=window.start_ns, seed=2)
    insert_spans(storage, to_columns(inside + before))
    return Dataset(inside, window)


def group(spans: Iterable[Span], key: Callable[[Span], Hashable]) -> dict[Hashable, list[Span]]:
    groups: dict[Hashable, list[Span]] = defaultdict(list)
    for span in spans:
        groups[key(span)].append(span)
    return dict(groups)


def active_seconds(members: list[Span]) -> float:
    """First to last start among ``members``, at least one second (the documented rule)."""
    starts = [s.start_ns for s in members]
    return max((max(starts) - min(starts)) / 1e9, 1.0)


def assert_stats(row: dict, members: list[Span], seconds: float | None, counted: str) -> None:
    """``counted`` is the field holding the count (requests or spans); the rate is over
    ``seconds``, or over the members' own first to last start when None."""
    errors = sum(span.is_error for span in members)
    assert row[counted] == len(members)
    assert row["errors"] == errors
    assert row["error_rate"] == (errors / len(members) if members else None)
    if not members:
        assert row["rate_per_s"] == 0
    else:
        per = seconds if seconds is not None else active_seconds(members)
        assert row["rate_per_s"] == pytest.approx(len(members) / per)
    assert_percentiles(
        [row[name] for name in PERCENTILE_FIELDS], [s.duration_ns for s in members], LEVELS
    )


def test_services(api: TestClient, dataset: Dataset) -> None:
    body = api.get("/api/v1/services", params=dataset.window.params).json()
    expected = group(dataset.spans, lambda s: s.service)
    assert [row["service"] for row in body["services"]] == sorted(expected)
    for row in body["services"]:
        members = expected[row["service"]]
        assert row["spans"] == len(members)
        requests = [s for s in members if s.is_request]
        assert_stats(row, requests, None, "requests")


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("count", lambda row: row["spans"]),
        ("p99", lambda row: row["p99_ms"]),
        ("error_rate", lambda row: row["error_rate"]),
    ],
)
def test_operations_sorted(
    api: TestClient, dataset: Dataset, sort: str, value: Callable[[dict], float]
) -> None:
    body = api.get("/api/v1/operations", params={**dataset.window.params, "sort": sort}).json()
    rows = body["operations"]
    expected = group(dataset.spans, lambda s: (s.service, s.name, s.kind))
    assert sorted((r["service"], r["operation"], r["kind"]) for r in rows) == sorted(expected)
    for row in rows:
        assert_stats(row, expected[row["service"], row["operation"], row["kind"]], None, "spans")
    values = [value(row) for row in rows]
    assert values == sorted(values, reverse=True)
    first_three = api.get(
        "/api/v1/operations", params={**dataset.window.params, "sort": sort, "limit": 3}
    ).json()["operations"]
    assert first_three == rows[:3]


def test_operations_of_one_service(api: TestClient, dataset: Dataset) -> None:
    params = {**dataset.window.params, "service": "svc-1"}
    rows = api.get("/api/v1/operations", params=params).json()["operations"]
    expected = group((s for s in dataset.spans if s.service == "svc-1"), lambda s: (s.name, s.kind))
    assert sorted((row["operation"], row["kind"]) for row in rows) == sorted(expected)
    assert {row["service"] for row in rows} == {"svc-1"}


def test_operations_of_one_kind(api: TestClient, dataset: Dataset) -> None:
    params = {**dataset.window.params, "kind": "Client"}
    rows = api.get("/api/v1/operations", params=params).json()["operations"]
    expected = group((s for s in dataset.spans if s.kind == "Client"), lambda s: (s.service, s.name))
    assert sorted((row["service"], row["operation"]) for row in rows) == sorted(expected)
    assert {row["kind"] for row in rows} == {"Client"}
    for row in rows:
        assert_stats(row, expected[row["service"], row["operation"]], None, "spans")
    response = api.get("/api/v1/operations", params={"kind": "client"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("step", "step_s", "filters"),
    [
        ("300", 300, {}),
        ("5m", 300, {"service": "svc-0"}),
        ("90s", 90, {"service": "svc-2", "operation": "op-3"}),
        (None, 60, {}),
    ],
)
def test_latency_buckets(
    api: TestClient, dataset: Dataset, step: str | None, step_s: int, filters: dict
) -> None:
    params = {**dataset.window.params, **filters, **({"step": step} if step else {})}
    body = api.get("/api/v1/latency", params=params).json()
    assert body["step_s"] == step_s
    matching = [
        s
        for s in dataset.spans
        if s.is_request
        and all(getattr(s, "name" if k == "operation" else k) == v for k, v in filters.items())
    ]
    expected = group(matching, lambda s: s.start_ns // 10**9 // step_s * step_s)
    first = dataset.window.start_ms // 1000 // step_s * step_s
    starts = list(range(first, dataset.window.end_ms // 1000, step_s))
    assert [datetime.fromisoformat(b["start"]).timestamp() for b in body["buckets"]] == starts
    for bucket, start in zip(body["buckets"], starts, strict=True):
        inside = min(start + step_s, dataset.window.end_ms / 1000) - max(
            start, dataset.window.start_ms / 1000
        )
        assert_stats(bucket, expected.get(start, []), inside, "requests")


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"step": "soon"}, "expected seconds"),
        ({"step": "0"}, "at least 1 second"),
        ({"step": "-5m"}, "expected seconds"),
        ({"step": "1s", "since": "7d"}, "at most 1500 buckets"),
        ({"step": "10000000000d"}, "expected seconds"),
    ],
)
def test_latency_step_is_validated(api: TestClient, params: dict, problem: str) -> None:
    response = api.get("/api/v1/latency", params=params)
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["query", "step"]
    assert problem in detail["msg"]


@pytest.mark.parametrize(
    ("group_by", "key"),
    [("operation", lambda s: s.name), ("status_code", lambda s: s.http_status)],
)
def test_errors(api: TestClient, dataset: Dataset, group_by: str, key: Callable) -> None:
    body = api.get(
        "/api/v1/errors", params={**dataset.window.params, "group_by": group_by}
    ).json()
    requests = [s for s in dataset.spans if s.is_request]
    errors = sum(s.is_error for s in requests)
    assert (body["requests"], body["errors"]) == (len(requests), errors)
    assert body["error_rate"] == errors / len(requests)
    groups = group(requests, lambda s: (s.service, key(s)))
    expected = sorted(
        (
            {
                "service": service,
                "operation": value if group_by == "operation" else None,
                "status_code": value if group_by == "status_code" else None,
                "requests": len(members),
                "errors": sum(s.is_error for s in members),
                "error_rate": sum(s.is_error for s in members) / len(members),
            }
            for (service, value), members in groups.items()
            if any(s.is_error for s in members)
        ),
        key=lambda g: (-g["errors"], g["service"], g[group_by]),
    )
    assert body["groups"] == expected
    limited = api.get(
        "/api/v1/errors", params={**dataset.window.params, "group_by": group_by, "limit": 2}
    ).json()
    assert limited["groups"] == expected[:2]
    assert limited["errors"] == errors


def test_errors_without_spans(api: TestClient) -> None:
    body = api.get("/api/v1/errors", params={"service": "nobody"}).json()
    assert (body["requests"], body["errors"], body["error_rate"], body["groups"]) == (0, 0, None, [])


def test_summary(api: TestClient, dataset: Dataset) -> None:
    for service in (None, "svc-0"):
        params = {**dataset.window.params, **({"service": service} if service else {})}
        body = api.get("/api/v1/summary", params=params).json()
        requests = [
            s for s in dataset.spans if s.is_request and service in (None, s.service)
        ]
        errors = sum(s.is_error for s in requests)
        assert body["requests"] == len(requests)
        assert body["errors"] == errors
        assert body["error_rate"] == errors / len(requests)
        assert body["rate_per_s"] == pytest.approx(len(requests) / active_seconds(requests))
        assert body["avg_ms"] == pytest.approx(
            sum(s.duration_ns for s in requests) / len(requests) / 1e6, rel=1e-12
        )
        assert_percentiles([body["p95_ms"]], [s.duration_ns for s in requests], [0.95])
        assert body["endpoints"] == len({(s.service, s.method, s.route) for s in requests})


def test_summary_without_requests(api: TestClient) -> None:
    body = api.get("/api/v1/summary").json()
    assert body["requests"] == 0
    assert body["error_rate"] is body["avg_ms"] is body["p95_ms"] is None


def test_top_endpoints(api: TestClient, dataset: Dataset) -> None:
    body = api.get("/api/v1/endpoints/top", params={**dataset.window.params, "limit": 5}).json()
    endpoints = group(
        (s for s in dataset.spans if s.is_request), lambda s: (s.service, s.method, s.route)
    )
    ranked = sorted(endpoints.items(), key=lambda item: (-len(item[1]), item[0]))[:5]
    assert [(e["service"], e["method"], e["route"]) for e in body["endpoints"]] == [
        key for key, _ in ranked
    ]
    for row, (_, members) in zip(body["endpoints"], ranked, strict=True):
        errors = sum(s.is_error for s in members)
        assert (row["requests"], row["errors"]) == (len(members), errors)
        assert row["error_rate"] == errors / len(members)
        assert row["avg_ms"] == pytest.approx(
            sum(s.duration_ns for s in members) / len(members) / 1e6, rel=1e-12
        )
        assert_percentiles([row["p95_ms"]], [s.duration_ns for s in members], [0.95])


def test_recent_requests(api: TestClient, dataset: Dataset) -> None:
    body = api.get("/api/v1/requests/recent", params={**dataset.window.params, "limit": 20})
    newest = sorted(
        (s for s in dataset.spans if s.is_request),
        key=lambda s: (-s.start_ns, s.trace_id, s.span_id),
    )[:20]
    assert [
        (
            r["trace_id"],
            r["span_id"],
            r["service"],
            r["method"],
            r["route"],
            r["status_code"],
            r["error"],
            r["client_address"],
            r["duration_ms"],
            round(datetime.fromisoformat(r["time"]).timestamp() * 1e6),
        )
        for r in body.json()["requests"]
    ] == [
        (
            s.trace_id,
            s.span_id,
            s.service,
            s.method,
            s.route,
            s.http_status,
            s.is_error,
            s.attributes.get("client.address", ""),
            s.duration_ns / 1e6,
            s.start_ns // 1000,
        )
        for s in newest
    ]
