"""OTLP trace request → ``otel_traces`` columns, as the Collector's ClickHouse exporter writes them.

A pure function (no I/O), so the exact mapping is tested without a server. It is also the
hottest Python code in the receiver: attribute access dominates its cost, hence the local
variable bindings and the string fast path below.
"""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from storage.traces import SpanColumns

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")


@dataclass(frozen=True, slots=True)
class Converted:
    spans: SpanColumns
    rejected: int
    error_message: str


def format_double(value: float) -> str:
    """Render a double as Go's pdata ``AsString`` does: shortest round-trip digits, fixed
    notation for 1e-6 <= |x| < 1e21 and exponent notation (``1e+21``, ``1.5e-7``) outside."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    shortest = repr(value)
    magnitude = abs(value)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        return format(Decimal(shortest).normalize(), "f")
    mantissa, _, exponent = shortest.partition("e")
    exp = int(exponent)
    return f"{mantissa.removesuffix('.0')}e{'+' if exp >= 0 else '-'}{abs(exp)}"


def _raw(value: AnyValue) -> object:
    """AnyValue → plain Python value for JSON rendering of arrays and maps."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [_raw(v) for v in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else format_double(number)
    return getattr(value, kind)


def _to_json(raw: object) -> str:
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def any_value_to_str(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return format_double(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind is None:
        return ""
    return _to_json(_raw(value))


def attributes_to_map(attributes) -> dict[str, str]:
    result = {}
    for kv in attributes:
        value = kv.value
        if value.WhichOneof("value") == "string_value":
            result[kv.key] = value.string_value
        else:
            result[kv.key] = any_value_to_str(value)
    return result


def _hex_id(raw: bytes, size: int) -> str | None:
    """Lower-case hex of a trace/span id; "" when absent; None when the length is wrong."""
    if len(raw) == size:
        return raw.hex() if raw.strip(b"\0") else None
    return "" if not raw else None


def convert_request(request: ExportTraceServiceRequest) -> Converted:
    """Flatten every span of ``request``; spans with malformed ids are counted, not stored.

    A span needs a 16-byte non-zero trace id and an 8-byte non-zero span id; a parent id
    must be empty or 8 bytes (OTLP spec, "Trace and Span IDs").
    """
    out = SpanColumns()
    timestamp, trace_id, span_id, parent_id = (
        out.Timestamp, out.TraceId, out.SpanId, out.ParentSpanId
    )
    trace_state, span_name, span_kind, service_name = (
        out.TraceState, out.SpanName, out.SpanKind, out.ServiceName
    )
    resource_attrs, scope_name, scope_version, span_attrs = (
        out.ResourceAttributes, out.ScopeName, out.ScopeVersion, out.SpanAttributes
    )
    duration, status_code, status_message = out.Duration, out.StatusCode, out.StatusMessage
    ev_ts, ev_name, ev_attrs = out.Events_Timestamp, out.Events_Name, out.Events_Attributes
    ln_trace, ln_span, ln_state, ln_attrs = (
        out.Links_TraceId, out.Links_SpanId, out.Links_TraceState, out.Links_Attributes
    )
    to_map = attributes_to_map
    kinds, statuses = SPAN_KINDS, STATUS_CODES
    rejected = 0
    first_error = ""

    for resource_spans in request.resource_spans:
        resource = to_map(resource_spans.resource.attributes)
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            s_name, s_version = scope.name, scope.version
            for span in scope_spans.spans:
                tid = _hex_id(span.trace_id, 16)
                sid = _hex_id(span.span_id, 8)
                pid = _hex_id(span.parent_span_id, 8)
                if not tid or not sid or pid is None:
                    rejected += 1
                    if not first_error:
                        first_error = (
                            f"span {span.name!r}: trace_id must be 16 bytes and span_id 8 "
                            "bytes, both non-zero; parent_span_id empty or 8 bytes"
                        )
                    continue
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                timestamp.append(start)
                trace_id.append(tid)
                span_id.append(sid)
                parent_id.append(pid)
                trace_state.append(span.trace_state)
                span_name.append(span.name)
                kind = span.kind
                span_kind.append(kinds[kind] if 0 <= kind < 6 else "Unspecified")
                service_name.append(service)
                resource_attrs.append(resource)
                scope_name.append(s_name)
                scope_version.append(s_version)
                span_attrs.append(to_map(span.attributes))
                duration.append(end - start if end > start else 0)
                status = span.status
                code = status.code
                status_code.append(statuses[code] if 0 <= code < 3 else "Unset")
                status_message.append(status.message)
                events = span.events
                if events:
                    ev_ts.append([e.time_unix_nano for e in events])
                    ev_name.append([e.name for e in events])
                    ev_attrs.append([to_map(e.attributes) for e in events])
                else:
                    ev_ts.append([])
                    ev_name.append([])
                    ev_attrs.append([])
                links = span.links
                if links:
                    ln_trace.append([_hex_id(link.trace_id, 16) or "" for link in links])
                    ln_span.append([_hex_id(link.span_id, 8) or "" for link in links])
                    ln_state.append([link.trace_state for link in links])
                    ln_attrs.append([to_map(link.attributes) for link in links])
                else:
                    ln_trace.append([])
                    ln_span.append([])
                    ln_state.append([])
                    ln_attrs.append([])

    message = f"{rejected} span(s) rejected: {first_error}" if rejected else ""
    return Converted(out, rejected, message)
