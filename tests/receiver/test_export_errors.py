"""Every failure gets the OTLP spec's status, and the receiver keeps serving afterwards."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from clickhouse_connect.driver.client import Client
from google.rpc import status_pb2
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelhouse.settings import Settings
from otelhouse.receiver.traces import TRACE_SERVICE
from otelhouse.storage import open_client
from otelhouse.storage.traces import SpanColumns, insert_spans
from tests.conftest import ReceiverThread
from otelhouse.demo.payloads import realistic_request

Export = Callable[..., ExportTraceServiceResponse]


@pytest.fixture
def export_to() -> Iterator[Callable[[ReceiverThread], Export]]:
    """Raw-bytes Export callables, so tests can send what no SDK would."""
    channels: list[grpc.Channel] = []

    def make(receiver: ReceiverThread) -> Export:
        channel = grpc.insecure_channel(receiver.endpoint)
        channels.append(channel)
        return channel.unary_unary(
            f"/{TRACE_SERVICE}/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )

    yield make
    for channel in channels:
        channel.close()


def stored_count(storage: Client) -> int:
    return storage.query("SELECT count() FROM otel_traces").result_rows[0][0]


def assert_still_serving(export: Export, storage: Client, *, seed: int = 99) -> None:
    before = stored_count(storage)
    response = export(realistic_request(8, seed=seed).SerializeToString(), timeout=10)
    assert not response.HasField("partial_success")
    assert stored_count(storage) == before + 8


def retry_delay(error: grpc.RpcError) -> float:
    trailers = dict(error.trailing_metadata())
    info = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert status.details[0].Is(RetryInfo.DESCRIPTOR)
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff\xff", b"\x0a\x05abc", b"\x08" + b"\xff" * 11],
    ids=["garbage", "truncated-submessage", "bad-varint"],
)
def test_undecodable_request_is_invalid_argument(
    receiver: ReceiverThread, export_to, storage: Client, payload: bytes
) -> None:
    export = export_to(receiver)
    with pytest.raises(grpc.RpcError) as caught:
        export(payload, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid OTLP" in caught.value.details()
    assert stored_count(storage) == 0
    assert_still_serving(export, storage)


def test_empty_request_succeeds_and_stores_nothing(
    receiver: ReceiverThread, export_to, storage: Client
) -> None:
    export = export_to(receiver)
    response = export(b"", timeout=10)
    assert not response.HasField("partial_success")
    assert stored_count(storage) == 0
    assert_still_serving(export, storage)


def test_bad_ids_are_a_partial_success_and_valid_spans_are_stored(
    receiver: ReceiverThread, export_to, storage: Client
) -> None:
    request = realistic_request(10)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[2].trace_id = b"\x01\x02"
    spans[5].span_id = b"\x00" * 8
    response = export_to(receiver)(request.SerializeToString(), timeout=10)
    assert response.partial_success.rejected_spans == 2
    assert "trace_id must be 16 bytes" in response.partial_success.error_message
    stored = {row[0] for row in storage.query("SELECT SpanId FROM otel_traces").result_rows}
    assert stored == {s.span_id.hex() for i, s in enumerate(spans) if i not in (2, 5)}


def test_oversize_request_is_resource_exhausted(
    start_receiver, export_to, storage: Client
) -> None:
    receiver = start_receiver(max_request_bytes=64 * 1024)
    export = export_to(receiver)
    big = realistic_request(400).SerializeToString()
    assert len(big) > 64 * 1024
    with pytest.raises(grpc.RpcError) as caught:
        export(big, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as caught:
        export(big, timeout=10, compression=grpc.Compression.Gzip)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stored_count(storage) == 0
    assert_still_serving(export, storage)


def test_gzip_compressed_request_is_accepted(
    receiver: ReceiverThread, export_to, storage: Client
) -> None:
    payload = realistic_request(50).SerializeToString()
    assert len(gzip.compress(payload)) < len(payload)
    export_to(receiver)(payload, timeout=10, compression=grpc.Compression.Gzip)
    assert stored_count(storage) == 50


def test_storage_failure_is_unavailable_with_retry_info_and_nothing_acknowledged(
    receiver: ReceiverThread, export_to, storage: Client
) -> None:
    export = export_to(receiver)
    storage.command("DETACH TABLE otel_traces")
    try:
        with pytest.raises(grpc.RpcError) as caught:
            export(realistic_request(20).SerializeToString(), timeout=10)
    finally:
        storage.command("ATTACH TABLE otel_traces")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "storage unavailable" in caught.value.details()
    assert 0 < retry_delay(caught.value) <= 2
    assert stored_count(storage) == 0
    assert_still_serving(export, storage)


def test_queue_over_its_bound_is_unavailable_and_memory_stays_bounded(
    settings: Settings, start_receiver, export_to, storage: Client
) -> None:
    gate = threading.Event()
    writer = open_client(settings.storage_config())
    queued_seen: list[int] = []

    def stalled_storage(spans: SpanColumns) -> None:
        gate.wait(30)
        insert_spans(writer, spans)

    receiver = start_receiver(sink=stalled_storage, queue_max_rows=1000, batch_max_rows=100)
    export = export_to(receiver)
    try:
        with ThreadPoolExecutor(4) as pool:
            accepted = [
                pool.submit(export, realistic_request(400, seed=i).SerializeToString(), timeout=20)
                for i in range(2)
            ]
            while receiver.traces.batcher.queued_rows < 800:
                threading.Event().wait(0.01)
            with pytest.raises(grpc.RpcError) as caught:
                export(realistic_request(400, seed=7).SerializeToString(), timeout=10)
            queued_seen.append(receiver.traces.batcher.queued_rows)
            gate.set()
            for future in accepted:
                future.result()
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "overloaded" in caught.value.details()
        assert 0 < retry_delay(caught.value) <= 2
        assert queued_seen == [800]
        assert stored_count(storage) == 800
        assert_still_serving(export, storage)
    finally:
        gate.set()
        writer.close()
