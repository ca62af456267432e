"""Limits through the real gRPC receiver: cut attributes are reported as a partial_success
warning while the span is stored, and a gzip bomb is refused without being inflated.

A bomb needs a client that sends an already-compressed gRPC message, which grpcio cannot do
(it compresses what it is given), so these tests speak HTTP/2 themselves through ``h2``.
"""

from __future__ import annotations

import socket
import zlib
from collections.abc import Callable
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
from clickhouse_connect.driver.client import Client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from otelhouse.receiver.traces import TRACES
from tests.conftest import ReceiverThread
from otelhouse.demo.payloads import kv, realistic_request

StartReceiver = Callable[..., ReceiverThread]
MiB = 1024 * 1024
GRPC_RESOURCE_EXHAUSTED = str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])


def gzip_of_zeros(expanded_bytes: int) -> bytes:
    """One gzip member inflating to ``expanded_bytes`` zeros (~1000x smaller)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    parts = [compressor.compress(zeros) for _ in range(expanded_bytes // MiB)]
    return b"".join(parts) + compressor.flush()


def raw_grpc_call(port: int, message: bytes, *, gzipped: bool) -> dict[str, str]:
    """One unary Export call with ``message`` framed as given (compressed flag set when
    ``gzipped``); returns the response headers and trailers."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.initiate_connection()
    conn.increment_flow_control_window(1 << 30)
    stream = conn.get_next_available_stream_id()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", TRACES.grpc_method),
        (":authority", f"127.0.0.1:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] + ([("grpc-encoding", "gzip")] if gzipped else [])
    conn.send_headers(stream, headers)
    body = bytes([int(gzipped)]) + len(message).to_bytes(4, "big") + message
    answer: dict[str, str] = {}
    sent, ended = 0, False
    try:
        sock.sendall(conn.data_to_send())
        while not ended:
            window = min(conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
            if sent < len(body) and window > 0:
                chunk = body[sent : sent + window]
                sent += len(chunk)
                conn.send_data(stream, chunk, end_stream=sent == len(body))
            else:
                data = sock.recv(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                        answer.update(event.headers)
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, stream)
                    ended |= isinstance(event, h2.events.StreamEnded | h2.events.StreamReset)
            sock.sendall(conn.data_to_send())
    finally:
        sock.close()
    return answer


def peak_rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])


def reset_peak_rss() -> None:
    """Linux resets VmHWM to the current RSS on "5" (proc(5), /proc/pid/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def stored_count(storage: Client) -> int:
    return storage.query("SELECT count() FROM otel_traces").result_rows[0][0]


def export(
    receiver: ReceiverThread, request: ExportTraceServiceRequest
) -> ExportTraceServiceResponse:
    with grpc.insecure_channel(receiver.endpoint) as channel:
        return TraceServiceStub(channel).Export(request, timeout=10)


def test_raw_client_sends_a_valid_gzip_request(
    start_receiver: StartReceiver, storage: Client
) -> None:
    """The raw client is right: the same framing with a real payload is stored."""
    receiver = start_receiver()
    payload = realistic_request(30).SerializeToString()
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    gzipped = compressor.compress(payload) + compressor.flush()
    answer = raw_grpc_call(receiver.port, gzipped, gzipped=True)
    assert answer.get("grpc-status") == "0", answer
    assert stored_count(storage) == 30


def test_gzip_bomb_is_resource_exhausted_without_inflating_it(
    start_receiver: StartReceiver, storage: Client
) -> None:
    """256 MiB of zeros in ~260 KB of gzip against a 4 MiB limit: grpc stops inflating at
    the limit, so this process's peak RSS grows by far less than the bomb."""
    receiver = start_receiver(max_request_bytes=4 * MiB)
    bomb = gzip_of_zeros(256 * MiB)
    assert len(bomb) < 4 * MiB
    reset_peak_rss()
    before_kib = peak_rss_kib()
    answer = raw_grpc_call(receiver.port, bomb, gzipped=True)
    growth_mib = (peak_rss_kib() - before_kib) / 1024
    assert answer.get("grpc-status") == GRPC_RESOURCE_EXHAUSTED, answer
    assert growth_mib < 48, f"peak RSS grew {growth_mib:.0f} MiB"
    assert stored_count(storage) == 0
    response = export(receiver, realistic_request(8, seed=3))
    assert not response.HasField("partial_success")
    assert stored_count(storage) == 8


def test_cut_values_are_a_warning_and_the_span_is_stored(
    start_receiver: StartReceiver, storage: Client
) -> None:
    receiver = start_receiver(max_attribute_value_bytes=40, max_attributes=9)
    request = realistic_request(3, seed=4)
    spans = request.resource_spans[0].scope_spans[0].spans
    long_value = "é" * 100
    spans[0].attributes.extend([kv("long", long_value), kv("extra", 1)])
    response = export(receiver, request)
    assert response.partial_success.rejected_spans == 0
    message = response.partial_success.error_message
    assert "1 attribute value(s) truncated to 40 bytes" in message
    assert "1 attribute(s) dropped beyond 9" in message
    stored = storage.query(
        "SELECT SpanAttributes['long'], length(SpanAttributes), count() OVER () "
        "FROM otel_traces WHERE SpanId = {id:String}",
        parameters={"id": spans[0].span_id.hex()},
    ).result_rows
    assert stored == [(long_value[:20], 9, 1)]
    assert stored_count(storage) == 3
