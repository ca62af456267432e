"""OTLP/gRPC ``Export`` of any signal on ``grpc.aio``, answered with the codes of
``receiver.errors``.

Methods are registered with a raw-bytes deserializer so that an undecodable request gets
INVALID_ARGUMENT from us; grpc's own deserializer would answer INTERNAL, which OTLP reserves
for server faults.
"""

from __future__ import annotations

from typing import Any

import grpc

from otelhouse.receiver.errors import IngestError, RetryLater, error_codes
from otelhouse.receiver.pipeline import SignalPipeline


def retry_metadata(error: RetryLater) -> tuple[tuple[str, bytes], ...]:
    """UNAVAILABLE trailers carrying RetryInfo both as the standard status details (Go, Java
    clients) and as ``google.rpc.retryinfo-bin`` (what the Python SDK exporter reads)."""
    return (
        ("grpc-status-details-bin", error.status().SerializeToString()),
        ("google.rpc.retryinfo-bin", error.retry_info().SerializeToString()),
    )


class ExportHandler:
    """``Export`` of one signal's collector service, feeding its pipeline."""

    def __init__(self, pipeline: SignalPipeline[Any, Any]) -> None:
        self._pipeline = pipeline

    async def export(self, payload: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            response = await self._pipeline.export(payload)
        except IngestError as exc:
            if isinstance(exc, RetryLater):
                context.set_trailing_metadata(retry_metadata(exc))
            await context.abort(error_codes(exc).grpc, str(exc))
        return response.SerializeToString()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            self._pipeline.signal.grpc_service,
            {"Export": grpc.unary_unary_rpc_method_handler(self.export)},
        )
