"""Why an OTLP export was refused, and the one table both transports answer it with.

Each ``IngestError`` subclass means one answer: its gRPC status code and HTTP status come from
``ERROR_CODES`` (most specific class first), so gRPC and HTTP cannot disagree about whether a
client should retry. The codes follow the OTLP specification: INVALID_ARGUMENT / 400 (415 for
an unsupported media type) for bad data, RESOURCE_EXHAUSTED without RetryInfo / 413 over the
size limit, UNAVAILABLE with RetryInfo / 503 with ``Retry-After`` when the receiver cannot take
the request now.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc import status_pb2
from google.rpc.error_details_pb2 import RetryInfo

RETRY_AFTER_S = 1.0


class IngestError(Exception):
    """The request was not taken; nothing of it was stored."""

    def status(self) -> status_pb2.Status:
        """The ``google.rpc.Status`` both transports send (gRPC trailers, HTTP error body)."""
        return status_pb2.Status(code=error_codes(self).grpc.value[0], message=str(self))


class InvalidRequest(IngestError):
    """The payload is not an OTLP export of the signal; resending it cannot help."""


class UnsupportedMedia(InvalidRequest):
    """A content type or encoding this endpoint does not speak."""


class RequestTooLarge(IngestError):
    """The payload (after decompression) exceeds ``max_request_bytes``; not retryable."""


class RetryLater(IngestError):
    """Overload, storage failure or shutdown: the client should resend after the delay."""

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


@dataclass(frozen=True, slots=True)
class ErrorCodes:
    """How one kind of refusal is answered on each transport."""

    grpc: grpc.StatusCode
    http: int


ERROR_CODES: tuple[tuple[type[IngestError], ErrorCodes], ...] = (
    (UnsupportedMedia, ErrorCodes(grpc.StatusCode.INVALID_ARGUMENT, 415)),
    (InvalidRequest, ErrorCodes(grpc.StatusCode.INVALID_ARGUMENT, 400)),
    (RequestTooLarge, ErrorCodes(grpc.StatusCode.RESOURCE_EXHAUSTED, 413)),
    (RetryLater, ErrorCodes(grpc.StatusCode.UNAVAILABLE, 503)),
    (IngestError, ErrorCodes(grpc.StatusCode.INTERNAL, 500)),
)


def error_codes(error: IngestError) -> ErrorCodes:
    """The first row of ``ERROR_CODES`` whose class ``error`` is an instance of."""
    return next(codes for kind, codes in ERROR_CODES if isinstance(error, kind))
