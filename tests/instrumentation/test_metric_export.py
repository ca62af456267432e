"""``instrument_app`` exporting ``http.server.request.duration``: a real app on uvicorn, real
OTLP exports to the receiver fixture, the histogram rows read back from
``otel_metrics_histogram`` and compared with the requests made and the server spans stored."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI, HTTPException
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otelhouse.core.addresses import free_port
from otelhouse.instrumentation import instrument_app, uninstrument_app
from otelhouse.instrumentation.metric_export import DURATION, DURATION_BUCKETS
from tests.app_server import serving

Stored = Callable[..., list[dict[str, Any]]]
HISTOGRAM_COLUMNS = (
    "ServiceName, ScopeName, MetricUnit, Attributes, ResourceAttributes, Count, Sum, "
    "BucketCounts, ExplicitBounds, Min, Max, AggregationTemporality, TimeUnix"
)
SPAN_DURATIONS = (
    "SELECT SpanAttributes['http.route'] AS route, SpanAttributes['http.request.method'] AS "
    "method, HttpStatusCode AS status, Duration FROM otel_traces "
    "WHERE ServiceName = {s:String} AND SpanKind = 'Server'"
)


class OutOfStock(RuntimeError):
    pass


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 404:
            raise HTTPException(status_code=404)
        return {"item_id": item_id}

    @app.post("/orders")
    async def order() -> dict[str, bool]:
        raise OutOfStock("nothing left")

    @app.get("/busy")
    async def busy() -> None:
        raise HTTPException(status_code=503)

    return app


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def latest_histograms(storage: Client, service: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The newest point of each series of the duration histogram, keyed by (route, method,
    status, error type); cumulative points carry every request recorded up to their time."""
    sql = (
        f"SELECT {HISTOGRAM_COLUMNS} FROM otel_metrics_histogram "
        "WHERE ServiceName = {s:String} AND MetricName = {m:String} ORDER BY TimeUnix, Count"
    )
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in storage.query(sql, parameters={"s": service, "m": DURATION}).named_results():
        a = row["Attributes"]
        key = (
            a.get("http.route"),
            a["http.request.method"],
            a.get("http.response.status_code"),
            a.get("error.type"),
        )
        latest[key] = row
    return latest


def span_durations(storage: Client, service: str) -> dict[tuple[str, str, int], list[int]]:
    durations: dict[tuple[str, str, int], list[int]] = {}
    for row in storage.query(SPAN_DURATIONS, parameters={"s": service}).named_results():
        durations.setdefault((row["route"], row["method"], row["status"]), []).append(
            row["Duration"]
        )
    return durations


def test_histogram_counts_requests_and_matches_the_server_spans(
    export_to: dict[str, str], storage: Client
) -> None:
    service = unique("metered")
    app = make_app()
    handle = instrument_app(app, service, export_metrics=True, export_logs=False, **export_to)
    with serving(app) as base, httpx.Client(base_url=base) as client:
        answers = [client.get(f"/items/{i}") for i in (1, 2, 3, 404)]
        answers += [client.post("/orders"), client.get("/busy"), client.get("/nowhere")]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 500, 503, 404]
    assert handle.shutdown()

    histograms = latest_histograms(storage, service)
    assert {key: row["Count"] for key, row in histograms.items()} == {
        ("/items/{item_id}", "GET", "200", None): 3,
        ("/items/{item_id}", "GET", "404", None): 1,
        ("/orders", "POST", "500", OutOfStock.__qualname__): 1,
        ("/busy", "GET", "503", "503"): 1,
        (None, "GET", "404", None): 1,
    }
    spans = span_durations(storage, service)
    for (route, method, status, _), row in histograms.items():
        durations = spans[route or "", method, int(status)]
        assert row["Count"] == len(durations)
        assert row["Sum"] == pytest.approx(sum(durations) / 1e9, abs=1e-9 * len(durations))
        assert row["Min"] == pytest.approx(min(durations) / 1e9, abs=1e-9)
        assert row["Max"] == pytest.approx(max(durations) / 1e9, abs=1e-9)
        assert list(row["ExplicitBounds"]) == list(DURATION_BUCKETS)
        expected = [0] * (len(DURATION_BUCKETS) + 1)
        for duration in durations:
            expected[bisect.bisect_left(DURATION_BUCKETS, duration / 1e9)] += 1
        assert list(row["BucketCounts"]) == expected
        assert (row["MetricUnit"], row["ScopeName"]) == ("s", "otelhouse.instrumentation")
        assert row["Attributes"]["url.scheme"] == "http"
        assert row["ResourceAttributes"]["service.name"] == service
        assert row["AggregationTemporality"] == 2


@pytest.mark.parametrize("opt_out", ["default", "argument", "env"])
def test_metrics_are_opt_in(
    receiver: Any,
    stored: Stored,
    storage: Client,
    monkeypatch: pytest.MonkeyPatch,
    opt_out: str,
) -> None:
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    if opt_out == "env":
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    arguments = {"export_metrics": False} if opt_out == "argument" else {}
    service = unique("unmetered")
    app = make_app()
    handle = instrument_app(app, service, endpoint=receiver.endpoint, **arguments)
    with serving(app) as base:
        httpx.get(f"{base}/items/1")
    assert handle.shutdown()

    assert (handle.metrics, handle.meter_provider) == (None, None)
    assert len(stored("ServiceName = {s:String}", s=service)) == 1
    assert latest_histograms(storage, service) == {}


def test_env_opts_in(
    receiver: Any, storage: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    service = unique("env-metered")
    app = make_app()
    handle = instrument_app(app, service, endpoint=receiver.endpoint)
    with serving(app) as base:
        httpx.get(f"{base}/items/1")
    assert handle.shutdown()

    (row,) = latest_histograms(storage, service).values()
    assert row["Count"] == 1


def test_lifespan_shutdown_flushes_and_uninstrument_closes(
    receiver: Any, storage: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export interval longer than the test: only the flushes can have exported."""
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")
    service = unique("flushed")
    app = make_app()
    handle = instrument_app(app, service, endpoint=receiver.endpoint, export_metrics=True)
    with serving(app) as base:
        httpx.get(f"{base}/items/1")
    (row,) = latest_histograms(storage, service).values()
    assert row["Count"] == 1

    with serving(app) as base:
        httpx.get(f"{base}/items/2")
        uninstrument_app(app)
        httpx.get(f"{base}/items/3")
    (row,) = latest_histograms(storage, service).values()
    assert row["Count"] == 2
    assert handle.metrics is not None and handle.shutdown()


def test_instrumenting_twice_records_each_request_once(
    receiver: Any, storage: Client
) -> None:
    service = unique("twice")
    app = make_app()
    first = instrument_app(app, service, endpoint=receiver.endpoint, export_metrics=True)
    second = instrument_app(app, service, endpoint=receiver.endpoint, export_metrics=True)
    with serving(app) as base, httpx.Client(base_url=base) as client:
        for i in range(3):
            client.get(f"/items/{i}")
    assert second is first and first.shutdown()

    (row,) = latest_histograms(storage, service).values()
    assert row["Count"] == 3


def test_meter_provider_receives_the_metrics_and_conflicts_are_refused() -> None:
    reader = InMemoryMetricReader()
    app = make_app()
    handle = instrument_app(
        app,
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[reader]),
        export_logs=False,
    )
    with serving(app) as base:
        httpx.get(f"{base}/items/1")
    handle.shutdown()

    (metric,) = [
        m
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    ]
    assert metric.name == DURATION and metric.data.data_points[0].count == 1
    assert handle.metrics is None
    with pytest.raises(ValueError, match="export_metrics=True"):
        instrument_app(make_app(), tracer_provider=TracerProvider(), export_metrics=True)
    with pytest.raises(ValueError, match="one or the other"):
        instrument_app(make_app(), meter_provider=MeterProvider(), export_metrics=False)


def test_unacknowledged_metrics_make_shutdown_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    app = make_app()
    handle = instrument_app(
        app,
        "unreachable",
        endpoint=f"127.0.0.1:{free_port()}",
        export_metrics=True,
        export_logs=False,
    )
    with serving(app) as base:
        httpx.get(f"{base}/items/1")
    assert handle.metrics is not None
    assert not handle.metrics.force_flush(5_000)
    assert not handle.shutdown(5_000)
