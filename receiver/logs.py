"""The logs signal: ``LogsService/Export`` and ``POST /v1/logs`` into ``otel_logs``.

``convert_logs_request`` turns a request into columns as the Collector's ClickHouse exporter
writes them: a pure function (no I/O), like ``convert_request`` for spans, whose attribute
rendering and limits it shares, so attribute values are stringified exactly as for spans and
cut under the same ``ConvertLimits``.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otelhouse.receiver.convert import (
    MAX_TIME_NS,
    AttributeMapper,
    scalar_to_str,
)
from otelhouse.receiver.limits import DEFAULT_LIMITS, ConvertLimits
from otelhouse.receiver.otlp_json import Path, decode_json
from otelhouse.receiver.signal import Conversion, Signal
from otelhouse.storage.logs import LOG_COLUMN_NAMES, LogColumns, insert_logs

LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"

_RECORDS: Path = (
    ("resourceLogs", "resource_logs"),
    ("scopeLogs", "scope_logs"),
    ("logRecords", "log_records"),
)
_HEX_IDS: tuple[tuple[Path, tuple[str, ...]], ...] = (
    (_RECORDS, ("traceId", "trace_id", "spanId", "span_id")),
)

MAX_SEVERITY_NUMBER = 24
"""``SEVERITY_NUMBER_FATAL4``; numbers outside 0..24 are stored as 0 (unspecified)."""


@dataclass(frozen=True, slots=True)
class ConvertedLogs:
    """Rows plus what was refused or cut. ``error_message`` is set whenever either happened,
    for OTLP's ``partial_success`` (``rejected_log_records`` = ``rejected``); when nothing was
    rejected it is a warning: records whose attributes or body were cut are still stored."""

    logs: LogColumns
    rejected: int
    error_message: str
    truncated_values: int = 0
    dropped_attributes: int = 0
    truncated_bodies: int = 0


def log_record_count(request: ExportLogsServiceRequest) -> int:
    """Number of log records in ``request``, stored or not."""
    return sum(
        len(scope_logs.log_records)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
    )


def _optional_hex_id(raw: bytes, size: int) -> str | None:
    """Lower-case hex of an optional trace/span id; "" when absent or all zero bytes (the
    exporter's "hex or empty string"); None when its length is not ``size``."""
    if not raw:
        return ""
    if len(raw) != size:
        return None
    return raw.hex() if raw.strip(b"\0") else ""


def _body_text(body: AnyValue, mapper: AttributeMapper) -> tuple[str, bool]:
    """``body`` as the exporter's ``Body().AsString()``, and whether its nesting was cut.

    Strings verbatim, other scalars as attribute values, arrays and maps as sorted-key JSON
    nested at most ``max_value_depth`` levels. A body is not an attribute: it is never cut to
    ``max_value_bytes`` (the request size limit bounds it), and a depth cut is reported as a
    cut body, not as a truncated attribute value.
    """
    kind = body.WhichOneof("value")
    if kind == "string_value":
        return body.string_value, False
    if kind != "kvlist_value" and kind != "array_value":
        return scalar_to_str(body, kind), False
    before = mapper.truncated
    text = mapper.container_json(body)
    cut = mapper.truncated != before
    mapper.truncated = before
    return text, cut


def _record_problem(trace_id: bytes, span_id: bytes, tid: str | None, sid: str | None) -> str:
    """Why a log record cannot be stored, for the partial_success message."""
    if tid is None:
        return f"log record: trace_id has {len(trace_id)} bytes, must be empty or 16"
    if sid is None:
        return f"log record: span_id has {len(span_id)} bytes, must be empty or 8"
    return (
        "log record: its time (observed time when time is 0) must be below 2^63 ns "
        "(year 2262, the end of DateTime64(9))"
    )


def convert_logs_request(
    request: ExportLogsServiceRequest, limits: ConvertLimits = DEFAULT_LIMITS
) -> ConvertedLogs:
    """Flatten every log record of ``request``; records that cannot be stored are counted,
    not stored; attributes beyond ``limits`` are cut and counted as for spans.

    A record's trace id must be empty or 16 bytes and its span id empty or 8 bytes (all-zero
    ids are stored as absent, ""). ``Timestamp`` is ``time_unix_nano``, or
    ``observed_time_unix_nano`` when that is 0 (both 0 stores the epoch, as the exporter
    does); it must fit ``DateTime64(9)``. ``ServiceName`` is the resource's ``service.name``
    ("" without one); ``TraceFlags`` the low byte of ``flags``.
    """
    out = LogColumns()
    timestamp, trace_id, span_id, trace_flags = (
        out.Timestamp, out.TraceId, out.SpanId, out.TraceFlags
    )
    severity_text, severity_number, service_name, body_col = (
        out.SeverityText, out.SeverityNumber, out.ServiceName, out.Body
    )
    resource_url, resource_attrs, scope_url, scope_name = (
        out.ResourceSchemaUrl, out.ResourceAttributes, out.ScopeSchemaUrl, out.ScopeName
    )
    scope_version, scope_attrs, log_attrs, event_name = (
        out.ScopeVersion, out.ScopeAttributes, out.LogAttributes, out.EventName
    )
    mapper = AttributeMapper(limits)
    to_map = mapper.to_map
    max_time, max_severity = MAX_TIME_NS, MAX_SEVERITY_NUMBER
    rejected = truncated_bodies = 0
    first_error = ""

    for resource_logs in request.resource_logs:
        resource = to_map(resource_logs.resource.attributes)
        service = resource.get("service.name", "")
        r_url = resource_logs.schema_url
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            s_url, s_name, s_version = scope_logs.schema_url, scope.name, scope.version
            s_attrs = to_map(scope.attributes)
            for record in scope_logs.log_records:
                tid = _optional_hex_id(record.trace_id, 16)
                sid = _optional_hex_id(record.span_id, 8)
                time_ns = record.time_unix_nano or record.observed_time_unix_nano
                if tid is None or sid is None or time_ns > max_time:
                    rejected += 1
                    first_error = first_error or _record_problem(
                        record.trace_id, record.span_id, tid, sid
                    )
                    continue
                text, cut = _body_text(record.body, mapper)
                truncated_bodies += cut
                severity = record.severity_number
                timestamp.append(time_ns)
                trace_id.append(tid)
                span_id.append(sid)
                trace_flags.append(record.flags & 0xFF)
                severity_text.append(record.severity_text)
                severity_number.append(severity if 0 <= severity <= max_severity else 0)
                service_name.append(service)
                body_col.append(text)
                resource_url.append(r_url)
                resource_attrs.append(resource)
                scope_url.append(s_url)
                scope_name.append(s_name)
                scope_version.append(s_version)
                scope_attrs.append(s_attrs)
                log_attrs.append(to_map(record.attributes))
                event_name.append(record.event_name)

    cuts = (mapper.truncated, mapper.dropped, truncated_bodies)
    message = f"{rejected} log record(s) rejected: {first_error}" if rejected else ""
    if any(cuts):
        message = "; ".join(filter(None, (message, _limits_message(limits, *cuts))))
    return ConvertedLogs(out, rejected, message, *cuts)


def _limits_message(limits: ConvertLimits, truncated: int, dropped: int, bodies: int) -> str:
    parts = [
        f"{truncated} attribute value(s) truncated to {limits.max_value_bytes} bytes"
        if truncated
        else "",
        f"{dropped} attribute(s) dropped beyond {limits.max_attributes} per resource, scope "
        "or log record"
        if dropped
        else "",
        f"{bodies} body(ies) nested deeper than {limits.max_value_depth} levels cut"
        if bodies
        else "",
    ]
    return "limits applied, affected log records are stored: " + ", ".join(filter(None, parts))


def decode_logs_json(payload: bytes) -> ExportLogsServiceRequest:
    """An OTLP/JSON logs export (hex trace and span ids), or ``InvalidRequest``."""
    return decode_json(payload, ExportLogsServiceRequest, _HEX_IDS)


def convert_logs(
    request: ExportLogsServiceRequest, limits: ConvertLimits
) -> Conversion[LogColumns]:
    converted = convert_logs_request(request, limits)
    return Conversion(converted.logs, converted.rejected, converted.error_message)


LOGS: Signal[ExportLogsServiceRequest, LogColumns] = Signal(
    name="logs",
    item="log records",
    grpc_service=LOGS_SERVICE,
    http_path="/v1/logs",
    request_type=ExportLogsServiceRequest,
    response_type=ExportLogsServiceResponse,
    rejected_field="rejected_log_records",
    count=log_record_count,
    decode_json=decode_logs_json,
    convert=convert_logs,
    new_columns=LogColumns,
    column_fields=LOG_COLUMN_NAMES,
    insert=insert_logs,
)
