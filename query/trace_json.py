"""The native trace API's JSON: fetched spans and search summaries → response models (pure).

Times are given twice: ``start`` as an RFC 3339 datetime for people and ``start_unix_nano`` as
an exact integer for programs (Python datetimes stop at microseconds). Durations are
milliseconds (floats), as everywhere in ``/api/v1``. A trace carries its log records too
(:class:`otelhouse.query.log_json.LogOut`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, Field

from otelhouse.query.log_json import LogOut
from otelhouse.query.logs import MAX_TRACE_LOGS, TRACE_MARGIN, LogRecord
from otelhouse.query.trace_fetch import Event, Link, Span, span_bounds
from otelhouse.query.trace_search import TraceSummary
from otelhouse.query.units import datetime_from_ns, ms_from_ns

TRACE_MARGIN_S = int(TRACE_MARGIN.total_seconds())


class EventOut(BaseModel):
    time: datetime
    time_unix_nano: int
    name: str
    attributes: dict[str, str]

    @classmethod
    def from_event(cls, event: Event) -> Self:
        return cls(
            time=datetime_from_ns(event.time_ns),
            time_unix_nano=event.time_ns,
            name=event.name,
            attributes=event.attributes,
        )


class LinkOut(BaseModel):
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, str]

    @classmethod
    def from_link(cls, link: Link) -> Self:
        return cls(
            trace_id=link.trace_id,
            span_id=link.span_id,
            trace_state=link.trace_state,
            attributes=link.attributes,
        )


class SpanOut(BaseModel):
    trace_id: str
    span_id: str
    parent_span_id: str = Field(description="Empty for a root span.")
    name: str
    kind: str = Field(description="Unspecified, Internal, Server, Client, Producer or Consumer.")
    service: str
    start: datetime
    start_unix_nano: int
    duration_ms: float
    status_code: str = Field(description="Unset, Ok or Error.")
    status_message: str
    error: bool = Field(description="StatusCode Error or HTTP status >= 500.")
    trace_state: str
    scope_name: str
    scope_version: str
    attributes: dict[str, str]
    resource_attributes: dict[str, str]
    events: list[EventOut]
    links: list[LinkOut]

    @classmethod
    def from_span(cls, span: Span) -> Self:
        return cls(
            trace_id=span.trace_id,
            span_id=span.span_id,
            parent_span_id=span.parent_span_id,
            name=span.name,
            kind=span.kind,
            service=span.service,
            start=datetime_from_ns(span.start_ns),
            start_unix_nano=span.start_ns,
            duration_ms=ms_from_ns(span.duration_ns),
            status_code=span.status_code,
            status_message=span.status_message,
            error=span.is_error,
            trace_state=span.trace_state,
            scope_name=span.scope_name,
            scope_version=span.scope_version,
            attributes=span.attributes,
            resource_attributes=span.resource,
            events=[EventOut.from_event(e) for e in span.events],
            links=[LinkOut.from_link(link) for link in span.links],
        )


class TraceOut(BaseModel):
    trace_id: str
    span_count: int
    services: list[str] = Field(description="Services with spans in the trace, sorted.")
    start: datetime
    start_unix_nano: int
    duration_ms: float = Field(description="From the first span's start to the last span's end.")
    spans: list[SpanOut] = Field(description="Every span, ordered by start.")
    logs: list[LogOut] = Field(
        description=f"Log records with this TraceId stamped from {TRACE_MARGIN_S} s before the "
        f"first span starts to {TRACE_MARGIN_S} s after the last one ends, oldest first (at "
        f"most {MAX_TRACE_LOGS})."
    )

    @classmethod
    def from_spans(cls, trace_id: str, spans: list[Span], logs: list[LogRecord]) -> Self:
        first, last = span_bounds(spans)
        return cls(
            trace_id=trace_id,
            span_count=len(spans),
            services=sorted({span.service for span in spans}),
            start=datetime_from_ns(first),
            start_unix_nano=first,
            duration_ms=ms_from_ns(last - first),
            spans=[SpanOut.from_span(span) for span in spans],
            logs=[LogOut.from_record(record) for record in logs],
        )


class TraceSummaryOut(BaseModel):
    trace_id: str
    root_service: str = Field(description="Service of the root span.")
    root_operation: str = Field(description="Name of the root span.")
    start: datetime = Field(description="Start of the root span.")
    start_unix_nano: int
    duration_ms: float = Field(description="Duration of the root span.")
    span_count: int = Field(description="Every stored span of the trace.")
    error: bool = Field(description="Some span failed: StatusCode Error or HTTP status >= 500.")
    services: list[str] = Field(description="Services with spans in the trace, sorted.")

    @classmethod
    def from_summary(cls, summary: TraceSummary) -> Self:
        return cls(
            trace_id=summary.trace_id,
            root_service=summary.root_service,
            root_operation=summary.root_operation,
            start=datetime_from_ns(summary.start_ns),
            start_unix_nano=summary.start_ns,
            duration_ms=ms_from_ns(summary.duration_ns),
            span_count=summary.span_count,
            error=summary.error,
            services=list(summary.services),
        )


class TraceSearchOut(BaseModel):
    traces: list[TraceSummaryOut] = Field(description="Matching traces, best-ranked first.")
    limit: int
