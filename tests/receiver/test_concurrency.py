"""Concurrent clients, group commit and shutdown: every acknowledged span is stored once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from clickhouse_connect.driver.client import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelhouse.settings import Settings
from otelhouse.receiver.traces import TRACE_SERVICE
from otelhouse.storage import open_client
from otelhouse.storage.traces import SpanColumns, insert_spans
from otelhouse.demo.payloads import realistic_request

CLIENTS = 8
REQUESTS_PER_CLIENT = 25
SPANS_PER_REQUEST = 64


def _client_sends(endpoint: str, client_no: int, requests: int) -> set[str]:
    """One client: its own channel, sequential Export calls; returns the span ids it sent."""
    sent: set[str] = set()
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(
            f"/{TRACE_SERVICE}/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        for i in range(requests):
            request = realistic_request(SPANS_PER_REQUEST, seed=client_no * 10_000 + i)
            response = export(request.SerializeToString(), timeout=30)
            assert not response.HasField("partial_success")
            sent.update(s.span_id.hex() for s in request.resource_spans[0].scope_spans[0].spans)
    return sent


def test_concurrent_clients_store_every_span_exactly_once(
    settings: Settings, start_receiver, storage: Client
) -> None:
    writer = open_client(settings.storage_config())
    batch_sizes: list[int] = []

    def counting_sink(spans: SpanColumns) -> None:
        insert_spans(writer, spans)
        batch_sizes.append(len(spans))

    receiver = start_receiver(sink=counting_sink, batch_max_delay_ms=50)
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(
                pool.map(
                    lambda n: _client_sends(receiver.endpoint, n, REQUESTS_PER_CLIENT),
                    range(CLIENTS),
                )
            )
    finally:
        receiver.stop()
        writer.close()
    sent = set().union(*results)
    assert len(sent) == CLIENTS * REQUESTS_PER_CLIENT * SPANS_PER_REQUEST
    total, distinct = storage.query(
        "SELECT count(), uniqExact(SpanId) FROM otel_traces"
    ).result_rows[0]
    assert total == distinct == len(sent)
    stored = {row[0] for row in storage.query("SELECT SpanId FROM otel_traces").result_rows}
    assert stored == sent
    assert sum(batch_sizes) == len(sent)
    assert len(batch_sizes) < CLIENTS * REQUESTS_PER_CLIENT / 2, "requests were not coalesced"


def test_stop_flushes_accepted_spans_before_returning(start_receiver, storage: Client) -> None:
    receiver = start_receiver(batch_max_delay_ms=60_000, batch_max_rows=1_000_000)
    with ThreadPoolExecutor(4) as pool:
        pending = [
            pool.submit(_client_sends, receiver.endpoint, n, 1) for n in range(4)
        ]
        deadline = time.monotonic() + 10
        while receiver.traces.batcher.queued_rows < 4 * SPANS_PER_REQUEST:
            assert time.monotonic() < deadline, "requests never reached the batcher"
            time.sleep(0.01)
        assert storage.query("SELECT count() FROM otel_traces").result_rows[0][0] == 0
        receiver.stop()
        sent = set().union(*(future.result() for future in pending))
    stored = {row[0] for row in storage.query("SELECT SpanId FROM otel_traces").result_rows}
    assert stored == sent and len(sent) == 4 * SPANS_PER_REQUEST
