"""``GET /metrics`` on the OTLP/HTTP port: Prometheus text whose counters move exactly as the
spans sent over both transports say they should."""

from __future__ import annotations

import re

import grpc
import httpx
from clickhouse_connect.driver.client import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelhouse.receiver.traces import TRACES
from otelhouse.receiver.metrics import Sample
from otelhouse.demo.payloads import realistic_request
from tests.receiver.http_harness import HttpReceiver, stored_count

SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(client: httpx.Client, receiver: HttpReceiver) -> dict[str, float]:
    """Series → value, after checking the exposition rules a Prometheus server relies on:
    HELP and TYPE before a family's samples, numeric values, cumulative histogram buckets."""
    reply = client.get(f"{receiver.url}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    typed: dict[str, str] = {}
    series: dict[str, float] = {}
    for line in reply.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in typed, f"{name} described twice"
            typed[name] = kind
            continue
        if line.startswith("#"):
            continue
        name, labels, value = SAMPLE_LINE.match(line).groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert family in typed, f"{name} has no TYPE line before it"
        series[f"{name}{labels or ''}"] = float(value)
    bucket = "otelhouse_receiver_write_seconds_bucket"
    buckets = [value for key, value in series.items() if key.startswith(bucket)]
    assert buckets == sorted(buckets)
    assert buckets[-1] == series["otelhouse_receiver_write_seconds_count"]
    return series


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    changes = {name: after[name] - before.get(name, 0) for name in after}
    return {name: change for name, change in changes.items() if change}


def test_counters_move_with_the_spans_sent(
    http_receiver: HttpReceiver, http_client: httpx.Client, storage: Client
) -> None:
    before = scrape(http_client, http_receiver)
    assert before["otelhouse_receiver_queue_spans"] == 0
    bound = http_receiver.thread.receiver.config.queue_max_rows
    assert before["otelhouse_receiver_queue_max_spans"] == bound

    with_bad_ids = realistic_request(12, seed=1)
    spans = with_bad_ids.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"short"
    spans[1].span_id = b""
    protobuf = {"content-type": "application/x-protobuf"}
    assert http_client.post(http_receiver.traces_url, content=with_bad_ids.SerializeToString(),
                            headers=protobuf).status_code == 200
    assert http_client.post(http_receiver.traces_url, content=b"\xff\xff",
                            headers=protobuf).status_code == 400
    with grpc.insecure_channel(http_receiver.thread.endpoint) as channel:
        export = channel.unary_unary(TRACES.grpc_method, request_serializer=None,
                                     response_deserializer=ExportTraceServiceResponse.FromString)
        export(realistic_request(30, seed=2).SerializeToString(), timeout=10)

    after = scrape(http_client, http_receiver)
    changes = moved(before, after)
    assert changes.pop("otelhouse_receiver_write_seconds_sum") > 0
    latency = {name: changes.pop(name) for name in list(changes) if "write_seconds" in name}
    assert latency["otelhouse_receiver_write_seconds_count"] == 2
    assert stored_count(storage) == 40
    assert changes == {
        "otelhouse_receiver_requests_total": 3,
        'otelhouse_receiver_requests_refused_total{reason="invalid"}': 1,
        "otelhouse_receiver_spans_received_total": 42,
        "otelhouse_receiver_spans_stored_total": 40,
        "otelhouse_receiver_spans_rejected_total": 2,
    }


def test_providers_add_their_series(http_receiver: HttpReceiver, http_client: httpx.Client) -> None:
    lag = [0.5]
    http_receiver.thread.receiver.metrics.add_provider(
        lambda: [
            Sample("otelhouse_wal_drain_lag_seconds", "Age of the oldest undrained entry.", lag[0]),
            Sample("otelhouse_wal_bytes", "Bytes in log segments.", 4096, labels={"dir": 'a"b'}),
        ]
    )
    first = scrape(http_client, http_receiver)
    lag[0] = 2.25
    second = scrape(http_client, http_receiver)
    assert first["otelhouse_wal_drain_lag_seconds"] == 0.5
    assert second["otelhouse_wal_drain_lag_seconds"] == 2.25
    assert second['otelhouse_wal_bytes{dir="a\\"b"}'] == 4096
