"""Whole traces' spans, fetched once for both trace APIs (native ``/api/v1`` and Jaeger).

A trace-id lookup on ``otel_traces`` alone reads granules from every part, because the table is
ordered by service and span name. The Collector's lookup table ``otel_traces_trace_id_ts``
holds each trace's first and last span time (DateTime, whole seconds), so the span query is
bounded to that window (one second of slack each side for the truncation) and ClickHouse
prunes partitions before the TraceId bloom filter skips granules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

from otelhouse.query.filters import Where
from otelhouse.storage.tables import TRACE_ID_TS_TABLE, TRACES_TABLE

_TRACE_ID = re.compile(r"[0-9a-f]{32}")

BOUNDS_SQL = f"""
SELECT toUnixTimestamp(min(Start)) AS lo, toUnixTimestamp(max(End)) AS hi
FROM {TRACE_ID_TS_TABLE}
WHERE TraceId IN {{trace_ids:Array(String)}}
GROUP BY TraceId
"""

WINDOW = (
    "Timestamp BETWEEN fromUnixTimestamp64Nano({lo_ns:Int64})"
    " AND fromUnixTimestamp64Nano({hi_ns:Int64})"
)

SPANS_COLUMNS = """
    TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
    ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes,
    toUnixTimestamp64Nano(Timestamp), Duration, StatusCode, StatusMessage, IsError,
    arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`), `Events.Name`,
    `Events.Attributes`,
    `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`"""

_SLACK_NS = 1_000_000_000


def normalise_trace_id(value: str) -> str | None:
    """Lower-case 32-hex-digit trace id, as the exporter stores it; None when malformed."""
    text = value.strip().lower()
    return text if _TRACE_ID.fullmatch(text) else None


@dataclass(frozen=True, slots=True)
class Event:
    time_ns: int
    name: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class Link:
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class Span:
    """One ``otel_traces`` row with times as integer nanoseconds (no float rounding)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: str
    service: str
    resource: dict[str, str]
    scope_name: str
    scope_version: str
    attributes: dict[str, str]
    start_ns: int
    duration_ns: int
    status_code: str
    status_message: str
    is_error: bool
    events: tuple[Event, ...] = field(default=())
    links: tuple[Link, ...] = field(default=())

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns


def span_bounds(spans: list[Span]) -> tuple[int, int]:
    """The first start and the last end among ``spans`` (not empty), in nanoseconds."""
    return min(span.start_ns for span in spans), max(span.end_ns for span in spans)


def span_from_row(row: tuple) -> Span:
    """A ``SPANS_COLUMNS`` result row → ``Span`` (pure)."""
    (
        trace_id, span_id, parent_id, trace_state, name, kind, service,
        resource, scope_name, scope_version, attributes,
        start_ns, duration_ns, status_code, status_message, is_error,
        event_ns, event_names, event_attrs,
        link_traces, link_spans, link_states, link_attrs,
    ) = row
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_id,
        trace_state=trace_state,
        name=name,
        kind=kind,
        service=service,
        resource=dict(resource),
        scope_name=scope_name,
        scope_version=scope_version,
        attributes=dict(attributes),
        start_ns=int(start_ns),
        duration_ns=int(duration_ns),
        status_code=status_code,
        status_message=status_message,
        is_error=bool(is_error),
        events=tuple(
            Event(int(ns), ev_name, dict(attrs))
            for ns, ev_name, attrs in zip(event_ns, event_names, event_attrs, strict=True)
        ),
        links=tuple(
            Link(tid, sid, state, dict(attrs))
            for tid, sid, state, attrs in zip(
                link_traces, link_spans, link_states, link_attrs, strict=True
            )
        ),
    )


def trace_window(client: Client, trace_ids: list[str]) -> Where | None:
    """``Timestamp`` bounds holding every span of ``trace_ids`` plus the TraceId condition,
    from the lookup table; None when none of the traces is known."""
    if not trace_ids:
        return None
    bounds = client.query(BOUNDS_SQL, parameters={"trace_ids": trace_ids}).result_rows
    if not bounds:
        return None
    return Where().and_(
        WINDOW,
        lo_ns=min(row[0] for row in bounds) * 1_000_000_000 - _SLACK_NS,
        hi_ns=max(row[1] for row in bounds) * 1_000_000_000 + _SLACK_NS,
    ).and_("TraceId IN {trace_ids:Array(String)}", trace_ids=trace_ids)


def fetch_traces(client: Client, trace_ids: list[str]) -> dict[str, list[Span]]:
    """Every stored span of each trace, ordered by start; traces not found are absent.

    ``trace_ids`` must already be normalised (see ``normalise_trace_id``); the result keeps
    their order.
    """
    where = trace_window(client, trace_ids)
    if where is None:
        return {}
    sql = (
        f"SELECT {SPANS_COLUMNS} FROM {TRACES_TABLE} WHERE {where.sql}"
        " ORDER BY TraceId, Timestamp, SpanId"
    )
    grouped: dict[str, list[Span]] = {}
    for row in client.query(sql, parameters=where.bind()).result_rows:
        span = span_from_row(row)
        grouped.setdefault(span.trace_id, []).append(span)
    return {tid: grouped[tid] for tid in trace_ids if tid in grouped}


def fetch_trace(client: Client, trace_id: str) -> list[Span]:
    """The spans of one trace, ordered by start; empty when the trace is unknown."""
    return fetch_traces(client, [trace_id]).get(trace_id, [])
