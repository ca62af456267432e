"""OTLP trace request → ``otel_traces`` columns, as the Collector's ClickHouse exporter
writes them.

A pure function (no I/O), so the exact mapping is tested without a server. It is also the
hottest Python code in the receiver: attribute access dominates its cost, hence the local
variable bindings and the string fast path below. ``ConvertLimits`` are applied on the way;
for the common short value they cost one ``len`` each.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from decimal import Decimal
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otelhouse.receiver.limits import DEFAULT_LIMITS, ConvertLimits
from otelhouse.storage.traces import SpanColumns

MAX_TIME_NS = 2**63 - 1
"""Latest time ``DateTime64(9)`` holds; one later value would fail the whole batch insert."""

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")


@dataclass(frozen=True, slots=True)
class Converted:
    """Rows plus what was refused or cut. ``error_message`` is set whenever either happened:
    OTLP carries it in ``partial_success``, as a warning when no span was rejected (spans
    whose attributes were cut are still stored)."""

    spans: SpanColumns
    rejected: int
    error_message: str
    truncated_values: int = 0
    dropped_attributes: int = 0
    dropped_events: int = 0
    dropped_links: int = 0


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


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _to_json(raw: object) -> str:
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def scalar_to_str(value: AnyValue, kind: str | None) -> str:
    """A non-container AnyValue as the exporter writes it; ``kind`` is its ``WhichOneof``."""
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
    return ""


class AttributeMapper:
    """Attribute lists → ``Map(String, String)`` values under one request's limits, counting
    what it cuts. One per request: the counters are its only state.

    ``to_map`` is a closure over local copies of the limits (cheaper than attribute lookups
    on ``self`` in the innermost loop); a string longer than ``safe_chars`` is the only thing
    that takes it off its fast path.
    """

    __slots__ = ("limits", "safe_chars", "deep_marker", "truncated", "dropped", "to_map")

    def __init__(self, limits: ConvertLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.safe_chars = limits.safe_chars
        self.deep_marker = f"[truncated: nested deeper than {limits.max_value_depth} levels]"
        self.truncated = 0
        self.dropped = 0
        self.to_map = self._make_to_map()

    def _make_to_map(self) -> Callable[..., dict[str, str]]:
        max_attributes, safe = self.limits.max_attributes, self.safe_chars
        fit, render, drop = self.fit, self.render, self.drop

        def to_map(attributes) -> dict[str, str]:  # noqa: ANN001 - a protobuf repeated field
            if len(attributes) > max_attributes:
                attributes = drop(attributes)
            result = {}
            for kv in attributes:
                value = kv.value
                kind = value.WhichOneof("value")
                if kind == "string_value":
                    text = value.string_value
                    result[kv.key] = fit(text) if len(text) > safe else text
                elif kind == "int_value":
                    result[kv.key] = str(value.int_value)
                else:
                    result[kv.key] = render(value, kind)
            return result

        return to_map

    def drop(self, attributes):  # noqa: ANN001, ANN201 - a protobuf repeated field, its slice
        self.dropped += len(attributes) - self.limits.max_attributes
        return attributes[: self.limits.max_attributes]

    def fit(self, text: str) -> str:
        """``text``, truncated (and counted) when it exceeds ``max_value_bytes``."""
        max_bytes = self.limits.max_value_bytes
        if len(text) <= self.safe_chars or len(text.encode("utf-8")) <= max_bytes:
            return text
        self.truncated += 1
        return truncate_utf8(text, max_bytes)

    def render(self, value: AnyValue, kind: str | None) -> str:
        """A non-string AnyValue as a string within the limits: arrays and maps as
        sorted-key JSON nested at most ``max_value_depth`` levels (deeper levels become a
        marker string); a value cut in both ways is counted once."""
        if kind != "array_value" and kind != "kvlist_value":
            return self.fit(scalar_to_str(value, kind))
        before = self.truncated
        text = self.container_json(value)
        if self.truncated == before:
            return self.fit(text)
        self.truncated = before + 1
        return truncate_utf8(text, self.limits.max_value_bytes)

    def container_json(self, value: AnyValue) -> str:
        """An array or map as sorted-key JSON nested at most ``max_value_depth`` levels;
        each deeper level becomes a marker string and counts in ``truncated``. No byte cap."""
        return _to_json(self._raw(value, self.limits.max_value_depth))

    def _raw(self, value: AnyValue, depth: int) -> object:
        """AnyValue → plain Python value for JSON; ``depth`` containers may still open."""
        kind = value.WhichOneof("value")
        if kind == "kvlist_value" or kind == "array_value":
            if depth == 0:
                self.truncated += 1
                return self.deep_marker
            if kind == "kvlist_value":
                return {kv.key: self._raw(kv.value, depth - 1) for kv in value.kvlist_value.values}
            return [self._raw(v, depth - 1) for v in value.array_value.values]
        if kind is None:
            return None
        if kind == "double_value":
            number = value.double_value
            return number if math.isfinite(number) else format_double(number)
        if kind == "bytes_value":
            return base64.b64encode(value.bytes_value).decode("ascii")
        return getattr(value, kind)


def _late_event(events) -> bool:  # noqa: ANN001 - a protobuf repeated field
    return any(event.time_unix_nano > MAX_TIME_NS for event in events)


def _span_problem(span: Span, tid: str | None, sid: str | None, pid: str | None) -> str:
    """Why ``span`` cannot be stored, for the partial_success message."""
    if not tid or not sid or pid is None:
        return (
            f"span {span.name!r}: trace_id must be 16 bytes and span_id 8 bytes, both "
            "non-zero; parent_span_id empty or 8 bytes"
        )
    return (
        f"span {span.name!r}: start and event times must be below 2^63 ns (year 2262, the "
        "end of DateTime64(9))"
    )


def _hex_id(raw: bytes, size: int) -> str | None:
    """Lower-case hex of a trace/span id; "" when absent; None when the length is wrong."""
    if len(raw) == size:
        return raw.hex() if raw.strip(b"\0") else None
    return "" if not raw else None


def convert_request(
    request: ExportTraceServiceRequest, limits: ConvertLimits = DEFAULT_LIMITS
) -> Converted:
    """Flatten every span of ``request``; spans that cannot be stored are counted, not
    stored; attributes, events and links beyond ``limits`` are cut and counted.

    A span needs a 16-byte non-zero trace id and an 8-byte non-zero span id; a parent id
    must be empty or 8 bytes (OTLP spec, "Trace and Span IDs"). Its start and event times
    must fit ``DateTime64(9)``: rejecting one span beats failing every batch it lands in.
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
    mapper = AttributeMapper(limits)
    to_map = mapper.to_map
    max_events, max_links = limits.max_events, limits.max_links
    dropped_events = dropped_links = 0
    kinds, statuses, max_time = SPAN_KINDS, STATUS_CODES, MAX_TIME_NS
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
                start = span.start_time_unix_nano
                events = span.events
                if (
                    not tid
                    or not sid
                    or pid is None
                    or start > max_time
                    or (events and _late_event(events))
                ):
                    rejected += 1
                    first_error = first_error or _span_problem(span, tid, sid, pid)
                    continue
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
                if events:
                    if len(events) > max_events:
                        dropped_events += len(events) - max_events
                        events = events[:max_events]
                    ev_ts.append([e.time_unix_nano for e in events])
                    ev_name.append([e.name for e in events])
                    ev_attrs.append([to_map(e.attributes) for e in events])
                else:
                    ev_ts.append([])
                    ev_name.append([])
                    ev_attrs.append([])
                links = span.links
                if links:
                    if len(links) > max_links:
                        dropped_links += len(links) - max_links
                        links = links[:max_links]
                    ln_trace.append([_hex_id(link.trace_id, 16) or "" for link in links])
                    ln_span.append([_hex_id(link.span_id, 8) or "" for link in links])
                    ln_state.append([link.trace_state for link in links])
                    ln_attrs.append([to_map(link.attributes) for link in links])
                else:
                    ln_trace.append([])
                    ln_span.append([])
                    ln_state.append([])
                    ln_attrs.append([])

    cuts = (mapper.truncated, mapper.dropped, dropped_events, dropped_links)
    message = f"{rejected} span(s) rejected: {first_error}" if rejected else ""
    if any(cuts):
        message = "; ".join(filter(None, (message, _limits_message(limits, *cuts))))
    return Converted(out, rejected, message, *cuts)


def _limits_message(
    limits: ConvertLimits, truncated: int, dropped: int, events: int, links: int
) -> str:
    parts = [
        f"{truncated} attribute value(s) truncated to {limits.max_value_bytes} bytes"
        if truncated
        else "",
        f"{dropped} attribute(s) dropped beyond {limits.max_attributes} per resource, span, "
        "event or link"
        if dropped
        else "",
        f"{events} event(s) dropped beyond {limits.max_events} per span" if events else "",
        f"{links} link(s) dropped beyond {limits.max_links} per span" if links else "",
    ]
    return "limits applied, affected spans are stored: " + ", ".join(filter(None, parts))
