"""One OTLP trace export, whatever the transport: decode → convert → submit → outcome.

gRPC and HTTP differ only in how they frame the request and word the answer, so the outcome
is a response or one of the exceptions below, and each transport maps them to its own codes
(INVALID_ARGUMENT / 400, RESOURCE_EXHAUSTED / 413, UNAVAILABLE / 503 with a retry delay).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ClassVar, NoReturn

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

from otelhouse.receiver.batcher import Batcher, BatcherClosed, Overloaded, SinkFailed
from otelhouse.receiver.convert import Converted, convert_request
from otelhouse.receiver.inflight import Hold, InflightBytes, InflightFull
from otelhouse.receiver.limits import DEFAULT_LIMITS, ConvertLimits

RETRY_AFTER_S = 1.0
DEFAULT_MAX_INFLIGHT_BYTES = 256 * 1024 * 1024

Decoder = Callable[[bytes], ExportTraceServiceRequest]


class IngestError(Exception):
    """The request was not taken; nothing of it was stored."""

    code: ClassVar[int] = code_pb2.INTERNAL

    def status(self) -> status_pb2.Status:
        """The ``google.rpc.Status`` both transports send (gRPC trailers, HTTP error body)."""
        return status_pb2.Status(code=self.code, message=str(self))


class InvalidRequest(IngestError):
    """The payload is not an OTLP trace export; resending it cannot help."""

    code = code_pb2.INVALID_ARGUMENT


class RequestTooLarge(IngestError):
    """The payload (after decompression) exceeds ``max_request_bytes``; not retryable."""

    code = code_pb2.RESOURCE_EXHAUSTED


class RetryLater(IngestError):
    """Overload, storage failure or shutdown: the client should resend after the delay."""

    code = code_pb2.UNAVAILABLE

    def __init__(self, message: str, retry_after_s: float = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def retry_info(self) -> RetryInfo:
        seconds = int(self.retry_after_s)
        nanos = int((self.retry_after_s - seconds) * 1e9)
        return RetryInfo(retry_delay=Duration(seconds=seconds, nanos=nanos))

    def status(self) -> status_pb2.Status:
        detail = AnyProto()
        detail.Pack(self.retry_info())
        status = super().status()
        status.details.append(detail)
        return status


def decode_protobuf(payload: bytes) -> ExportTraceServiceRequest:
    try:
        return ExportTraceServiceRequest.FromString(payload)
    except DecodeError as exc:
        raise InvalidRequest(f"request is not a valid OTLP trace export: {exc}") from None


class TraceIngest:
    """Takes decoded-or-raw requests into the batcher and answers only once they are stored
    (or durably logged), counting every outcome in the batcher's ``IngestStats``.

    Memory has two bounds: the batcher's on spans waiting for storage, and ``inflight`` on
    the bodies of requests not yet answered. Only the converted columns wait with a request;
    its decoded protobuf tree, several times the body's size, is dropped before the wait."""

    def __init__(
        self,
        batcher: Batcher,
        limits: ConvertLimits = DEFAULT_LIMITS,
        *,
        max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
    ) -> None:
        self._batcher = batcher
        self._limits = limits
        self.stats = batcher.stats
        self.inflight = InflightBytes(max_inflight_bytes)

    @contextmanager
    def hold(self, size: int) -> Iterator[Hold]:
        """Hold ``size`` bytes of the in-flight budget for the block; ``RetryLater`` (not yet
        counted) when they, or what the hold grows by, do not fit."""
        try:
            with self.inflight.reserve(size) as held:
                yield held
        except InflightFull as exc:
            raise RetryLater(f"receiver busy, retry later: {exc}") from None

    async def export(
        self, payload: bytes, decode: Decoder = decode_protobuf
    ) -> ExportTraceServiceResponse:
        stats = self.stats
        stats.requests += 1
        try:
            with self.hold(len(payload)):
                converted = self._convert(payload, decode)
                await self._batcher.submit(converted.spans)
        except IngestError as exc:
            self._count(exc)
            raise
        except (Overloaded, BatcherClosed, SinkFailed) as exc:
            error = RetryLater(_retry_reason(exc))
            self._count(error)
            raise error from None
        response = ExportTraceServiceResponse()
        if converted.error_message:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=converted.rejected, error_message=converted.error_message
                )
            )
        return response

    def _convert(self, payload: bytes, decode: Decoder) -> Converted:
        """Decode and convert, refusing before conversion when the queue has no room; the
        decoded request is freed on return."""
        request = decode(payload)
        spans = span_count(request)
        try:
            self._batcher.check_room(spans)
        except (Overloaded, BatcherClosed):
            self.stats.refused += spans
            raise
        converted = convert_request(request, self._limits)
        self.stats.received += len(converted.spans) + converted.rejected
        self.stats.rejected += converted.rejected
        return converted

    def refuse(self, error: IngestError) -> NoReturn:
        """Count a request its transport refused before ``export`` (say, an unsupported
        content type), then raise ``error``."""
        self.stats.requests += 1
        self._count(error)
        raise error

    def _count(self, error: IngestError) -> None:
        stats = self.stats
        if isinstance(error, RequestTooLarge):
            stats.oversize_requests += 1
        elif isinstance(error, RetryLater):
            stats.retry_later_requests += 1
        else:
            stats.invalid_requests += 1


def span_count(request: ExportTraceServiceRequest) -> int:
    return sum(
        len(scope_spans.spans)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
    )


def _retry_reason(exc: Exception) -> str:
    if isinstance(exc, Overloaded):
        return f"receiver overloaded, retry later: {exc}"
    if isinstance(exc, SinkFailed):
        return f"storage unavailable, nothing stored: {exc}"
    return str(exc)
