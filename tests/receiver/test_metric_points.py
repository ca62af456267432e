"""The metrics signal end to end: the real OTel SDK's metric exporters (gRPC and HTTP,
cumulative and delta) into the five tables, hand-built summaries and malformed points, JSON,
and the per-table deduplication of a replayed batch."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import grpc
import httpx
from clickhouse_connect.driver.client import Client
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableGauge,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource

from otelhouse.receiver.metric_points import METRICS_SERVICE, convert_metrics_request
from otelhouse.storage.metrics import METRIC_TABLES, MetricColumns, insert_metrics
from tests.conftest import ReceiverThread
from tests.receiver.http_harness import HttpReceiver

BOUNDS = (1.0, 5.0, 10.0)
DELTA = {
    Counter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}


def record_with_sdk(exporter: Any, service: str) -> None:
    """Counter, up-down counter, explicit and exponential histograms and an observable gauge,
    exported once by ``exporter`` (``force_flush``; the exporter is shut down before the
    provider, whose shutdown would export a second time)."""
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=Resource.create({"service.name": service}),
        metric_readers=[reader],
        views=[
            View(instrument_name="latency", aggregation=ExplicitBucketHistogramAggregation(BOUNDS)),
            View(instrument_name="size", aggregation=ExponentialBucketHistogramAggregation()),
        ],
    )
    meter = provider.get_meter("tests.metrics", "1.2")
    requests = meter.create_counter("requests", unit="1", description="served requests")
    requests.add(3, {"route": "/a"})
    requests.add(4, {"route": "/a"})
    requests.add(5, {"route": "/b"})
    queue = meter.create_up_down_counter("queue")
    queue.add(5)
    queue.add(-2)
    latency = meter.create_histogram("latency", unit="ms")
    for value in (0.5, 3.0, 7.0, 20.0):
        latency.record(value, {"route": "/a"})
    size = meter.create_histogram("size")
    for value in (1.0, 2.0, 4.0):
        size.record(value)

    def temperature(options: CallbackOptions) -> list[Observation]:
        return [Observation(42.5, {"room": "x"})]

    meter.create_observable_gauge("temperature", callbacks=[temperature])
    assert provider.force_flush(10_000)
    exporter.shutdown()
    provider.shutdown()


def rows(storage: Client, table: str, service: str) -> list[dict[str, Any]]:
    sql = f"SELECT * FROM {table} WHERE ServiceName = {{s:String}} ORDER BY MetricName, Attributes"
    return list(storage.query(sql, parameters={"s": service}).named_results())


def assert_sdk_points_stored(storage: Client, service: str, temporality: int) -> None:
    now = time.time()
    sums = rows(storage, "otel_metrics_sum", service)
    assert [(r["MetricName"], r["Attributes"], r["Value"], r["IsMonotonic"]) for r in sums] == [
        ("queue", {}, 3.0, False),
        ("requests", {"route": "/a"}, 7.0, True),
        ("requests", {"route": "/b"}, 5.0, True),
    ]
    assert {r["AggregationTemporality"] for r in sums} == {temporality}
    assert sums[1]["MetricUnit"] == "1" and sums[1]["MetricDescription"] == "served requests"
    assert sums[1]["ScopeName"] == "tests.metrics" and sums[1]["ScopeVersion"] == "1.2"
    assert sums[1]["ResourceAttributes"]["service.name"] == service
    assert abs(sums[1]["TimeUnix"].timestamp() - now) < 60

    (histogram,) = rows(storage, "otel_metrics_histogram", service)
    assert histogram["MetricName"] == "latency" and histogram["MetricUnit"] == "ms"
    assert histogram["Count"] == 4 and histogram["Sum"] == 30.5
    assert histogram["ExplicitBounds"] == list(BOUNDS)
    assert histogram["BucketCounts"] == [1, 1, 1, 1]
    assert (histogram["Min"], histogram["Max"]) == (0.5, 20.0)
    assert histogram["AggregationTemporality"] == temporality

    (exponential,) = rows(storage, "otel_metrics_exponential_histogram", service)
    assert exponential["MetricName"] == "size"
    assert (exponential["Count"], exponential["Sum"], exponential["ZeroCount"]) == (3, 7.0, 0)
    assert sum(exponential["PositiveBucketCounts"]) == 3
    assert exponential["NegativeBucketCounts"] == [] or sum(exponential["NegativeBucketCounts"]) == 0
    assert (exponential["Min"], exponential["Max"]) == (1.0, 4.0)

    (gauge,) = rows(storage, "otel_metrics_gauge", service)
    assert (gauge["MetricName"], gauge["Attributes"], gauge["Value"]) == (
        "temperature", {"room": "x"}, 42.5
    )
    assert rows(storage, "otel_metrics_summary", service) == []


def test_sdk_grpc_cumulative_points_round_trip(
    storage: Client, receiver: ReceiverThread
) -> None:
    record_with_sdk(GrpcMetricExporter(endpoint=receiver.endpoint, insecure=True), "grpc-cumulative")
    assert_sdk_points_stored(storage, "grpc-cumulative", temporality=2)


def test_sdk_http_delta_points_round_trip(storage: Client, http_receiver: HttpReceiver) -> None:
    exporter = HttpMetricExporter(
        endpoint=f"{http_receiver.url}/v1/metrics", preferred_temporality=DELTA
    )
    record_with_sdk(exporter, "http-delta")
    assert_sdk_points_stored(storage, "http-delta", temporality=1)


def summary_and_malformed_request(now_ns: int) -> ExportMetricsServiceRequest:
    """Two good summary points, one good gauge with an exemplar, three malformed points and
    a metric without data points."""
    return ExportMetricsServiceRequest.FromString(
        ExportMetricsServiceRequest(
            resource_metrics=[{
                "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "hand"}}]},
                "scope_metrics": [{
                    "scope": {"name": "hand-built"},
                    "metrics": [
                        {"name": "rpc.duration", "summary": {"data_points": [
                            {"time_unix_nano": now_ns, "start_time_unix_nano": now_ns - 10**10,
                             "count": 10, "sum": 55.0,
                             "quantile_values": [{"quantile": 0.5, "value": 5.0},
                                                 {"quantile": 0.99, "value": 9.9}]},
                            {"time_unix_nano": now_ns, "count": 1, "sum": 1.0,
                             "attributes": [{"key": "k", "value": {"int_value": 7}}]},
                            {"time_unix_nano": now_ns, "quantile_values": [{"quantile": 1.5}]},
                        ]}},
                        {"name": "cpu", "gauge": {"data_points": [
                            {"time_unix_nano": now_ns, "as_int": 3,
                             "exemplars": [{"time_unix_nano": now_ns, "as_double": 2.5,
                                            "trace_id": bytes(range(16)),
                                            "filtered_attributes": [
                                                {"key": "b", "value": {"bool_value": True}}]},
                                           {"time_unix_nano": now_ns}]},
                            {"as_double": 1.0},
                        ]}},
                        {"name": "bad.histogram", "histogram": {"data_points": [
                            {"time_unix_nano": now_ns, "bucket_counts": [1, 2],
                             "explicit_bounds": [1.0, 2.0]},
                        ]}},
                        {"name": "nothing", "sum": {}},
                        {"name": "no.data"},
                    ],
                }],
            }]
        ).SerializeToString()
    )


def test_summaries_stored_and_malformed_points_rejected_over_grpc(
    storage: Client, receiver: ReceiverThread
) -> None:
    now_ns = time.time_ns()
    with grpc.insecure_channel(receiver.endpoint) as channel:
        export = channel.unary_unary(
            f"/{METRICS_SERVICE}/Export",
            request_serializer=ExportMetricsServiceRequest.SerializeToString,
            response_deserializer=ExportMetricsServiceResponse.FromString,
        )
        response = export(summary_and_malformed_request(now_ns), timeout=10)
    assert response.partial_success.rejected_data_points == 3
    assert response.partial_success.error_message.startswith("3 data point(s) rejected")
    summaries = rows(storage, "otel_metrics_summary", "hand")
    assert [(r["Count"], r["Sum"], r["Attributes"]) for r in summaries] == [
        (10, 55.0, {}), (1, 1.0, {"k": "7"})
    ]
    assert summaries[0]["ValueAtQuantiles.Quantile"] == [0.5, 0.99]
    assert summaries[0]["ValueAtQuantiles.Value"] == [5.0, 9.9]
    assert summaries[0]["StartTimeUnix"].timestamp() == now_ns // 10**9 - 10
    (gauge,) = rows(storage, "otel_metrics_gauge", "hand")
    assert gauge["Value"] == 3.0 and gauge["ScopeName"] == "hand-built"
    assert gauge["Exemplars.Value"] == [2.5, 0.0]
    assert gauge["Exemplars.TraceId"] == [bytes(range(16)).hex(), "0" * 32]
    assert gauge["Exemplars.SpanId"] == ["0" * 16, "0" * 16]
    assert gauge["Exemplars.FilteredAttributes"] == [{"b": "true"}, {}]
    assert rows(storage, "otel_metrics_histogram", "hand") == []


def test_json_gzip_over_http_with_hex_exemplar_ids(
    storage: Client, http_receiver: HttpReceiver
) -> None:
    now_ns = time.time_ns()
    document = {"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json"}}]},
        "scopeMetrics": [{"metrics": [{"name": "hits", "sum": {
            "aggregationTemporality": 2, "isMonotonic": True,
            "dataPoints": [{"timeUnixNano": str(now_ns), "asInt": "12", "exemplars": [
                {"timeUnixNano": str(now_ns), "asInt": "1", "traceId": "AB" * 16, "spanId": "cd" * 8}
            ]}],
        }}]}],
    }]}
    response = httpx.post(
        f"{http_receiver.url}/v1/metrics",
        content=gzip.compress(json.dumps(document).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200 and response.json() == {}
    (row,) = rows(storage, "otel_metrics_sum", "json")
    assert (row["Value"], row["IsMonotonic"], row["AggregationTemporality"]) == (12.0, True, 2)
    assert row["Exemplars.TraceId"] == ["ab" * 16] and row["Exemplars.SpanId"] == ["cd" * 8]


def test_nan_values_and_flags_are_stored_as_sent() -> None:
    request = ExportMetricsServiceRequest(resource_metrics=[{"scope_metrics": [{"metrics": [
        {"name": "g", "gauge": {"data_points": [
            {"time_unix_nano": 5 * 10**9, "as_double": float("nan"), "flags": 1}
        ]}},
    ]}]}])
    converted = convert_metrics_request(request)
    (row,) = converted.metrics.rows(METRIC_TABLES[0])
    assert row["Value"] != row["Value"] and row["Flags"] == 1 and row["TimeUnix"] == 5
    assert converted.rejected == 0 and converted.error_message == ""


def test_replayed_batch_is_stored_once_per_table(storage: Client) -> None:
    converted = convert_metrics_request(summary_and_malformed_request(time.time_ns()))
    batch = MetricColumns()
    batch.extend(converted.metrics)
    assert len(batch) == 3
    for _ in range(2):
        insert_metrics(storage, batch, settings={"insert_deduplication_token": "wal:1-2"})
    counts = {
        table.kind: storage.query(f"SELECT count() FROM {table.name}").result_rows[0][0]
        for table in METRIC_TABLES
    }
    assert counts == {
        "gauge": 1, "sum": 0, "histogram": 0, "exponential_histogram": 0, "summary": 2
    }
