"""A second signal rides the same pipeline and transports: registering it with the
``Receiver`` is all it takes to get its gRPC method, its HTTP route, its own batches and
counters. The signal here is traces under another service, path and name, stored in
memory; no storage engine is involved."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelhouse.receiver.config import ReceiverConfig
from otelhouse.receiver.http_service import OtlpHttpReceiver
from otelhouse.receiver.pipeline import Receiver
from otelhouse.receiver.server import GrpcReceiver
from otelhouse.receiver.traces import TRACES
from otelhouse.storage.traces import SpanColumns
from otelhouse.demo.payloads import realistic_request

COPIES = dataclasses.replace(
    TRACES,
    name="copies",
    item="span copies",
    grpc_service="otelhouse.test.CopyService",
    http_path="/v1/copies",
)
CONFIG = ReceiverConfig(
    grpc_addr="127.0.0.1:0",
    http_addr="127.0.0.1:0",
    max_request_bytes=4 * 1024**2,
    batch_max_rows=10_000,
    batch_max_delay_s=0.01,
    queue_max_rows=100_000,
)


async def export_both_ways(receiver: Receiver) -> tuple[bytes, int, str, dict[str, object]]:
    otlp_grpc, otlp_http = GrpcReceiver(receiver), OtlpHttpReceiver(receiver)
    receiver.start()
    grpc_port, http_port = await otlp_grpc.start(), await otlp_http.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            export = channel.unary_unary(COPIES.grpc_method)
            answer = await export(realistic_request(30, seed=1).SerializeToString(), timeout=10)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
            posted = await client.post(
                "/v1/copies",
                content=realistic_request(20, seed=2).SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
            )
            metrics = (await client.get("/metrics")).text
        return answer, posted.status_code, metrics, receiver.health()
    finally:
        await asyncio.gather(otlp_grpc.stop(), otlp_http.stop(), receiver.stop())


def test_a_second_signal_is_served_over_grpc_and_http_into_its_own_sink() -> None:
    stored: dict[str, list[str]] = {"traces": [], "copies": []}

    def sink(name: str) -> Callable[[SpanColumns], None]:
        return lambda spans: stored[name].extend(spans.SpanId)

    receiver = Receiver(CONFIG, {TRACES: sink("traces"), COPIES: sink("copies")})
    answer, status, metrics, health = asyncio.run(export_both_ways(receiver))

    assert ExportTraceServiceResponse.FromString(answer) == ExportTraceServiceResponse()
    assert status == 200
    assert stored["traces"] == []
    sent = [realistic_request(30, seed=1), realistic_request(20, seed=2)]
    assert sorted(stored["copies"]) == sorted(
        span.span_id.hex()
        for request in sent
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    )
    series = dict(re.findall(r"^(otelhouse_receiver_\S+) (\S+)$", metrics, re.MULTILINE))
    assert series["otelhouse_receiver_span_copies_stored_total"] == "50"
    assert series["otelhouse_receiver_spans_stored_total"] == "0"
    assert series["otelhouse_receiver_requests_total"] == "2"
    assert health["span_copies_stored"] == 50 and health["spans_stored"] == 0
