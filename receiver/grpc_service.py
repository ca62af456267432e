"""OTLP/gRPC ``TraceService/Export`` on ``grpc.aio``, with the spec's status codes.

The method is registered with a raw-bytes deserializer so that an undecodable request gets
INVALID_ARGUMENT from us; grpc's own deserializer would answer INTERNAL, which OTLP reserves
for server faults.
"""

from __future__ import annotations

import grpc

from otelhouse.receiver.ingest import InvalidRequest, RetryLater, TraceIngest

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
METHODS = (f"/{TRACE_SERVICE}/Export",)


def retry_metadata(error: RetryLater) -> tuple[tuple[str, bytes], ...]:
    """UNAVAILABLE trailers carrying RetryInfo both as the standard status details (Go, Java
    clients) and as ``google.rpc.retryinfo-bin`` (what the Python SDK exporter reads)."""
    return (
        ("grpc-status-details-bin", error.status().SerializeToString()),
        ("google.rpc.retryinfo-bin", error.retry_info().SerializeToString()),
    )


class TraceExportHandler:
    """Maps ``TraceIngest`` outcomes to gRPC status codes."""

    def __init__(self, ingest: TraceIngest) -> None:
        self._ingest = ingest

    async def export(self, payload: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            response = await self._ingest.export(payload)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except RetryLater as exc:
            context.set_trailing_metadata(retry_metadata(exc))
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return response.SerializeToString()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            TRACE_SERVICE,
            {"Export": grpc.unary_unary_rpc_method_handler(self.export)},
        )
