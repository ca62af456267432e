"""The trace signal: ``TraceService/Export`` and ``POST /v1/traces`` into ``otel_traces``."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otelhouse.receiver.convert import convert_request
from otelhouse.receiver.limits import ConvertLimits
from otelhouse.receiver.otlp_json import Path, decode_json
from otelhouse.receiver.signal import Conversion, Signal
from otelhouse.storage.traces import COLUMN_FIELDS, SpanColumns, insert_spans

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

_SPANS: Path = (("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans",))
_HEX_IDS: tuple[tuple[Path, tuple[str, ...]], ...] = (
    (_SPANS, ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")),
    ((*_SPANS, ("links",)), ("traceId", "trace_id", "spanId", "span_id")),
)


def span_count(request: ExportTraceServiceRequest) -> int:
    return sum(
        len(scope_spans.spans)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
    )


def decode_trace_json(payload: bytes) -> ExportTraceServiceRequest:
    """An OTLP/JSON trace export (hex span, parent and link ids), or ``InvalidRequest``."""
    return decode_json(payload, ExportTraceServiceRequest, _HEX_IDS)


def convert_traces(
    request: ExportTraceServiceRequest, limits: ConvertLimits
) -> Conversion[SpanColumns]:
    converted = convert_request(request, limits)
    return Conversion(converted.spans, converted.rejected, converted.error_message)


TRACES: Signal[ExportTraceServiceRequest, SpanColumns] = Signal(
    name="traces",
    item="spans",
    grpc_service=TRACE_SERVICE,
    http_path="/v1/traces",
    request_type=ExportTraceServiceRequest,
    response_type=ExportTraceServiceResponse,
    rejected_field="rejected_spans",
    count=span_count,
    decode_json=decode_trace_json,
    convert=convert_traces,
    new_columns=SpanColumns,
    column_fields=COLUMN_FIELDS,
    insert=insert_spans,
)
