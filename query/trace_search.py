"""Trace search: filters → SQL with bound values, and its two steps against the store.

Step one ranks trace ids; step two summarises only the picked ones. Ranking needs whole-trace
start, duration and error flag, so it aggregates the time range by TraceId with the lightest
columns only; the string-heavy summary (root span, services) is computed for at most ``limit``
traces, which the TraceId bloom filter finds cheaply.

Span conditions (service, operation, kind, error, attributes, span duration) must all hold on
the *same* span, as in Jaeger; trace conditions (duration, status) hold on the whole trace
within the time range. Attribute keys and values are bound parameters, never SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from clickhouse_connect.driver.client import Client

from query.filters import TIME_RANGE, Where, span_filter
from query.params import TimeRange

MAX_LIMIT = 1000
MAX_ATTRIBUTES = 20

_START_NS = "min(toUnixTimestamp64Nano(Timestamp))"
_DURATION_NS = f"max(toUnixTimestamp64Nano(Timestamp) + Duration) - {_START_NS}"


class Order(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    SLOWEST = "slowest"
    FASTEST = "fastest"


_ORDER_SQL = {
    Order.NEWEST: "first_ns DESC",
    Order.OLDEST: "first_ns ASC",
    Order.SLOWEST: "trace_ns DESC",
    Order.FASTEST: "trace_ns ASC",
}


class Status(StrEnum):
    ERROR = "error"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class SpanMatch:
    """Conditions one span of a trace must meet together; ``None`` means "any"."""

    service: str | None = None
    operation: str | None = None
    kind: str | None = None
    error: bool | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None

    def where(self, time: TimeRange) -> Where:
        """Spans in ``time`` meeting every condition. An attribute matches a span attribute
        or, failing that, a resource attribute of the span (Jaeger matches process tags too)."""
        where = span_filter(time, service=self.service, operation=self.operation)
        if self.kind is not None:
            where = where.and_("SpanKind = {kind:String}", kind=self.kind)
        if self.error is not None:
            where = where.and_("IsError = {error:UInt8}", error=int(self.error))
        for i, (key, value) in enumerate(self.attributes):
            k, v = f"{{k{i}:String}}", f"{{v{i}:String}}"
            where = where.and_(
                f"(mapContains(SpanAttributes, {k}) AND SpanAttributes[{k}] = {v})"
                f" OR (mapContains(ResourceAttributes, {k}) AND ResourceAttributes[{k}] = {v})",
                **{f"k{i}": key, f"v{i}": value},
            )
        if self.min_duration_ns is not None:
            where = where.and_("Duration >= {span_min_ns:UInt64}", span_min_ns=self.min_duration_ns)
        if self.max_duration_ns is not None:
            where = where.and_("Duration <= {span_max_ns:UInt64}", span_max_ns=self.max_duration_ns)
        return where


@dataclass(frozen=True, slots=True)
class TraceSearch:
    time: TimeRange
    span: SpanMatch = field(default_factory=SpanMatch)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    status: Status | None = None
    order: Order = Order.NEWEST
    limit: int = 20


def trace_ids_query(search: TraceSearch) -> tuple[str, dict[str, object]]:
    """Step one: the ids of the ``limit`` best-ranked matching traces."""
    spans = search.span.where(search.time)
    traces = f"{TIME_RANGE} AND TraceId != ''"
    if len(spans.conditions) > 1:
        traces += f" AND TraceId IN (SELECT TraceId FROM otel_traces WHERE {spans.sql})"
    having: list[str] = []
    extra: dict[str, object] = {"limit": search.limit}
    if search.min_duration_ns is not None:
        having.append("trace_ns >= {trace_min_ns:Int64}")
        extra["trace_min_ns"] = search.min_duration_ns
    if search.max_duration_ns is not None:
        having.append("trace_ns <= {trace_max_ns:Int64}")
        extra["trace_max_ns"] = search.max_duration_ns
    if search.status is not None:
        having.append(f"has_error = {int(search.status is Status.ERROR)}")
    sql = (
        f"SELECT TraceId, {_START_NS} AS first_ns, {_DURATION_NS} AS trace_ns,"
        f" max(IsError) AS has_error FROM otel_traces WHERE {traces} GROUP BY TraceId"
        + (f" HAVING {' AND '.join(having)}" if having else "")
        + f" ORDER BY {_ORDER_SQL[search.order]}, TraceId LIMIT {{limit:UInt32}}"
    )
    return sql, spans.bind(**extra)


_SUMMARY_COLUMNS = f"""
    TraceId,
    {_START_NS} AS first_ns,
    {_DURATION_NS} AS trace_ns,
    count() AS span_count,
    max(IsError) AS has_error,
    arraySort(groupUniqArray(ServiceName)) AS services,
    countIf(ParentSpanId = '') > 0 AS has_root,
    if(has_root, argMinIf(ServiceName, Timestamp, ParentSpanId = ''),
       argMin(ServiceName, Timestamp)) AS root_service,
    if(has_root, argMinIf(SpanName, Timestamp, ParentSpanId = ''),
       argMin(SpanName, Timestamp)) AS root_operation"""


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """A trace as seen within the searched time range."""

    trace_id: str
    start_ns: int
    duration_ns: int
    span_count: int
    error: bool
    services: tuple[str, ...]
    root_service: str
    root_operation: str
    has_root: bool


def search_trace_ids(client: Client, search: TraceSearch) -> list[str]:
    sql, values = trace_ids_query(search)
    return [row[0] for row in client.query(sql, parameters=values).result_rows]


def summarise(client: Client, trace_ids: list[str], time: TimeRange) -> list[TraceSummary]:
    """Step two: summaries of ``trace_ids`` in the order given."""
    if not trace_ids:
        return []
    where = span_filter(time).and_("TraceId IN {trace_ids:Array(String)}", trace_ids=trace_ids)
    sql = f"SELECT {_SUMMARY_COLUMNS} FROM otel_traces WHERE {where.sql} GROUP BY TraceId"
    rows = client.query(sql, parameters=where.bind()).result_rows
    by_id = {
        row[0]: TraceSummary(
            trace_id=row[0],
            start_ns=int(row[1]),
            duration_ns=int(row[2]),
            span_count=int(row[3]),
            error=bool(row[4]),
            services=tuple(row[5]),
            has_root=bool(row[6]),
            root_service=row[7],
            root_operation=row[8],
        )
        for row in rows
    }
    return [by_id[tid] for tid in trace_ids if tid in by_id]
