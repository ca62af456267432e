"""Fetched spans → the Jaeger query service's JSON model (pure functions).

This is the shape Jaeger UI and Grafana's Jaeger datasource read (Jaeger ``model/json``):
microsecond times, parent and links as ``CHILD_OF``/``FOLLOWS_FROM`` references, typed tags,
span events as logs, and per-trace processes (``p1``, ``p2``...) carrying the service name and
the other resource attributes. Status and kind become the tags Jaeger's own OTLP translation
produces (``span.kind``, ``otel.status_code``, ``error``...), so the UI marks failed spans.

The store keeps every attribute value as a string (the Collector schema), so tag types are
inferred: ``true``/``false`` → bool, a canonical decimal integer within int64 → int64, a
finite decimal with a fraction or exponent → float64, anything else → string. A string
attribute that looks like a number is therefore shown as a number.
"""

from __future__ import annotations

import math
import re
from typing import Any

from otelhouse.query.trace_fetch import Event, Span

JAEGER_KINDS = {
    "Internal": "internal",
    "Server": "server",
    "Client": "client",
    "Producer": "producer",
    "Consumer": "consumer",
}
OTEL_KINDS = {jaeger: otel for otel, jaeger in JAEGER_KINDS.items()}

_INTEGER = re.compile(r"0|-?[1-9][0-9]{0,18}")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)")
_INT64 = range(-(2**63), 2**63)
_SAMPLED = 1


def envelope(data: Any, *, total: int | None = None) -> dict[str, Any]:
    """Jaeger's ``structuredResponse`` around ``data``."""
    if total is None:
        total = len(data) if isinstance(data, list) else 0
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": None}


def error_envelope(code: int, *messages: str) -> dict[str, Any]:
    return {
        "data": None,
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": [{"code": code, "msg": message} for message in messages],
    }


def tag(key: str, value: str) -> dict[str, Any]:
    """A Jaeger key-value with its type inferred from the stored string."""
    if value in ("true", "false"):
        return {"key": key, "type": "bool", "value": value == "true"}
    if _INTEGER.fullmatch(value) and int(value) in _INT64:
        return {"key": key, "type": "int64", "value": int(value)}
    if _FLOAT.fullmatch(value) and math.isfinite(number := float(value)):
        return {"key": key, "type": "float64", "value": number}
    return {"key": key, "type": "string", "value": value}


def tags(attributes: dict[str, str]) -> list[dict[str, Any]]:
    return [tag(key, attributes[key]) for key in sorted(attributes)]


def _string(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "type": "string", "value": value}


def span_tags(span: Span) -> list[dict[str, Any]]:
    """The span's attributes, then the tags Jaeger derives from kind, status and scope."""
    result = tags(span.attributes)
    if span.kind in JAEGER_KINDS:
        result.append(_string("span.kind", JAEGER_KINDS[span.kind]))
    if span.status_code in ("Ok", "Error"):
        result.append(_string("otel.status_code", span.status_code.upper()))
    if span.is_error:
        result.append({"key": "error", "type": "bool", "value": True})
    for key, value in (
        ("otel.status_description", span.status_message),
        ("otel.scope.name", span.scope_name),
        ("otel.scope.version", span.scope_version),
        ("w3c.tracestate", span.trace_state),
    ):
        if value:
            result.append(_string(key, value))
    return result


def log(event: Event) -> dict[str, Any]:
    return {
        "timestamp": event.time_ns // 1000,
        "fields": [_string("event", event.name), *tags(event.attributes)],
    }


def references(span: Span) -> list[dict[str, str]]:
    """The parent as ``CHILD_OF`` first (the UI nests by it), then links as ``FOLLOWS_FROM``."""
    refs = []
    if span.parent_span_id:
        refs.append(
            {"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id}
        )
    refs.extend(
        {"refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id}
        for link in span.links
    )
    return refs


def _process_key(span: Span) -> tuple[str, tuple[tuple[str, str], ...]]:
    return span.service, tuple(sorted(span.resource.items()))


def jaeger_trace(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    """One trace: spans in the given order, processes numbered by first appearance."""
    process_ids: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    processes: dict[str, dict[str, Any]] = {}
    rendered = []
    for span in spans:
        key = _process_key(span)
        if key not in process_ids:
            process_ids[key] = f"p{len(process_ids) + 1}"
            resource = {k: v for k, v in span.resource.items() if k != "service.name"}
            processes[process_ids[key]] = {"serviceName": span.service, "tags": tags(resource)}
        rendered.append(
            {
                "traceID": span.trace_id,
                "spanID": span.span_id,
                "flags": _SAMPLED,
                "operationName": span.name,
                "references": references(span),
                "startTime": span.start_ns // 1000,
                "duration": span.duration_ns // 1000,
                "tags": span_tags(span),
                "logs": [log(event) for event in span.events],
                "processID": process_ids[key],
                "warnings": None,
            }
        )
    return {"traceID": trace_id, "spans": rendered, "processes": processes, "warnings": None}
