"""OTLP/gRPC ``TraceService/Export`` on ``grpc.aio``, with the spec's status codes.

The method is registered with a raw-bytes deserializer so that an undecodable request gets
INVALID_ARGUMENT from us; grpc's own deserializer would answer INTERNAL, which OTLP reserves
for server faults.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from receiver.batcher import Batcher, BatcherClosed, Overloaded, SinkFailed
from receiver.convert import convert_request

log = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
RETRY_AFTER_S = 1.0


def retry_metadata(message: str, delay_s: float) -> tuple[tuple[str, bytes], ...]:
    """UNAVAILABLE trailers carrying RetryInfo both as the standard status details (Go, Java
    clients) and as ``google.rpc.retryinfo-bin`` (what the Python SDK exporter reads)."""
    seconds = int(delay_s)
    info = RetryInfo(retry_delay=Duration(seconds=seconds, nanos=int((delay_s - seconds) * 1e9)))
    detail = AnyProto()
    detail.Pack(info)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
    )


class TraceExportHandler:
    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher
        self._stats = batcher.stats

    async def export(self, payload: bytes, context: grpc.aio.ServicerContext) -> bytes:
        stats = self._stats
        stats.requests += 1
        try:
            request = ExportTraceServiceRequest.FromString(payload)
        except DecodeError as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid OTLP trace export: {exc}"
            )
        converted = convert_request(request)
        stats.received += len(converted.spans) + converted.rejected
        stats.rejected += converted.rejected
        try:
            await self._batcher.submit(converted.spans)
        except Overloaded as exc:
            stats.refused += len(converted.spans)
            await self._unavailable(context, f"receiver overloaded, retry later: {exc}")
        except BatcherClosed as exc:
            stats.refused += len(converted.spans)
            await self._unavailable(context, str(exc))
        except SinkFailed as exc:
            await self._unavailable(context, f"storage unavailable, nothing stored: {exc}")
        response = ExportTraceServiceResponse()
        if converted.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=converted.rejected, error_message=converted.error_message
                )
            )
        return response.SerializeToString()

    @staticmethod
    async def _unavailable(context: grpc.aio.ServicerContext, message: str) -> None:
        context.set_trailing_metadata(retry_metadata(message, RETRY_AFTER_S))
        await context.abort(grpc.StatusCode.UNAVAILABLE, message)

    def generic_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            TRACE_SERVICE,
            {"Export": grpc.unary_unary_rpc_method_handler(self.export)},
        )
