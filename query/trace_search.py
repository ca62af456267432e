"""Trace search: filters → SQL with bound values, and its two steps against the store.

Step one ranks trace ids, step two summarises only the picked ones (at most ``limit``), which
the TraceId bloom filter and the trace-id lookup table find cheaply.

**Native search ranks root spans** (no parent): a trace is listed when its root span starts
in the time range, and its start and duration are the root span's (the latency its caller
saw). Reading only root rows (clustered by the table order, as roots are entry spans) is
what keeps this fast at 10M spans; aggregating every span by TraceId took ~10x longer.
Traces whose root span was never stored (a remote parent, still in flight) are not listed;
they are still found by id and by the Jaeger search.

**Jaeger search ranks matching spans**, as Jaeger does: the traces of the newest spans that
meet every span condition.

Span conditions (service, operation, kind, error, attributes, span duration) must all hold on
the *same* span, as in Jaeger. ``status`` is about the whole trace: ``error`` when some span
of it failed within the time range. Attribute keys and values are bound parameters.

**Newest first** (the default order) looks at the range's last 1/16 before the whole range
(:func:`find_trace_ids`); there, a trace's spans count from one minute before the window, so
a span that starts more than a minute before its trace's root (hosts' clocks that far apart)
may be missed when the window alone answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from clickhouse_connect.driver.client import Client

from otelhouse.query.filters import TIME_RANGE, Where, map_entry, span_filter
from otelhouse.query.params import TimeRange, epoch_ns
from otelhouse.storage.semantics import ERROR, REQUEST
from otelhouse.query.trace_fetch import trace_window
from otelhouse.storage.tables import TRACES_TABLE

MAX_LIMIT = 1000

ROOT = "ParentSpanId = ''"
ROOT_PREFILTER = REQUEST
"""Every root span is a request (``storage/semantics.py``); the one-byte column is read first
so the string column ``ParentSpanId`` is read only where requests are."""
FAILED_IN_RANGE = f"SELECT TraceId FROM {TRACES_TABLE} WHERE {TIME_RANGE} AND {ERROR}"


class Order(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"
    SLOWEST = "slowest"
    FASTEST = "fastest"


_ORDER_SQL = {
    Order.NEWEST: "Timestamp DESC",
    Order.OLDEST: "Timestamp ASC",
    Order.SLOWEST: "Duration DESC",
    Order.FASTEST: "Duration ASC",
}


class Status(StrEnum):
    ERROR = "error"
    OK = "ok"


HOT_ATTRIBUTES = {"http.route": "HttpRoute"}
"""Span attributes with a MATERIALIZED column holding exactly their value (schema 0002): a
filter on one reads that column instead of decompressing the whole attribute map."""


def attribute_condition(i: int, key: str, value: str, resource: bool) -> tuple[str, dict]:
    """SQL for attribute ``key`` = ``value`` on a span (present, and equal: an empty value
    does not match a missing key), or on its resource when ``resource``."""
    condition, values = map_entry("SpanAttributes", i, key, value)
    if key in HOT_ATTRIBUTES and value:
        condition = f"{HOT_ATTRIBUTES[key]} = {{v{i}:String}}"
    if resource:
        condition = f"({condition}) OR ({map_entry('ResourceAttributes', i, key, value)[0]})"
    return condition, values


@dataclass(frozen=True, slots=True)
class SpanMatch:
    """Conditions one span of a trace must meet together; ``None`` means "any".
    ``resource_attributes``: an attribute may be met by a resource attribute of the span
    instead (Jaeger matches process tags too)."""

    service: str | None = None
    operation: str | None = None
    kind: str | None = None
    error: bool | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    resource_attributes: bool = False
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None

    def where(self, time: TimeRange) -> Where:
        """Spans in ``time`` meeting every condition."""
        where = span_filter(time, service=self.service, operation=self.operation)
        if self.kind is not None:
            where = where.and_("SpanKind = {kind:String}", kind=self.kind)
        if self.error is not None:
            where = where.and_("IsError = {error:UInt8}", error=int(self.error))
        for i, (key, value) in enumerate(self.attributes):
            condition, values = attribute_condition(i, key, value, self.resource_attributes)
            where = where.and_(condition, **values)
        if self.min_duration_ns is not None:
            where = where.and_("Duration >= {span_min_ns:UInt64}", span_min_ns=self.min_duration_ns)
        if self.max_duration_ns is not None:
            where = where.and_("Duration <= {span_max_ns:UInt64}", span_max_ns=self.max_duration_ns)
        return where


@dataclass(frozen=True, slots=True)
class TraceSearch:
    """A native search: ``min_duration_ns``/``max_duration_ns`` bound the root span."""

    time: TimeRange
    span: SpanMatch = field(default_factory=SpanMatch)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    status: Status | None = None
    order: Order = Order.NEWEST
    limit: int = 20


def trace_ids_query(
    search: TraceSearch, roots_from: datetime | None = None
) -> tuple[str, dict[str, object]]:
    """Step one (native): the ``limit`` best-ranked root spans' trace ids.

    ``roots_from`` narrows the root spans (not the span conditions) to those starting then
    or later: see :func:`find_trace_ids`."""
    spans = search.span.where(search.time)
    conditions = [TIME_RANGE, ROOT_PREFILTER, ROOT]
    extra: dict[str, object] = {"limit": search.limit}
    if roots_from is not None:
        conditions.append("Timestamp >= fromUnixTimestamp64Nano({roots_from_ns:Int64})")
        extra["roots_from_ns"] = epoch_ns(roots_from)
    if len(spans.conditions) > 1:
        conditions.append(f"TraceId IN (SELECT TraceId FROM {TRACES_TABLE} WHERE {spans.sql})")
    if search.status is not None:
        negation = "NOT " if search.status is Status.OK else ""
        conditions.append(f"TraceId {negation}IN ({FAILED_IN_RANGE})")
    if search.min_duration_ns is not None:
        conditions.append("Duration >= {root_min_ns:UInt64}")
        extra["root_min_ns"] = search.min_duration_ns
    if search.max_duration_ns is not None:
        conditions.append("Duration <= {root_max_ns:UInt64}")
        extra["root_max_ns"] = search.max_duration_ns
    sql = (
        f"SELECT TraceId FROM {TRACES_TABLE} WHERE {' AND '.join(f'({c})' for c in conditions)}"
        f" ORDER BY {_ORDER_SQL[search.order]}, TraceId LIMIT {{limit:UInt32}}"
    )
    return sql, spans.bind(**extra)


RECENT_SHARE = 16
"""The newest-first search looks at the last 1/16 of the range before the whole of it."""
CLOCK_SKEW = timedelta(minutes=1)
"""How long before its trace's root span a span may start (hosts' clocks disagree) and still
count for the trace in the recent window."""


def recent_window(search: TraceSearch) -> tuple[TraceSearch, datetime] | None:
    """For a newest-first search, the same search over the range's last part: root spans
    from the returned moment on, span conditions from ``CLOCK_SKEW`` before it. None when
    the range is too short for that to save anything."""
    time = search.time
    if search.order is not Order.NEWEST or time.end - time.start <= RECENT_SHARE * CLOCK_SKEW:
        return None
    roots_from = time.end - (time.end - time.start) / RECENT_SHARE
    narrowed = replace(search, time=TimeRange(roots_from - CLOCK_SKEW, time.end))
    return narrowed, roots_from


def find_trace_ids(client: Client, search: TraceSearch) -> list[str]:
    """Step one, run: the ranked trace ids.

    Trace-level conditions (a service's span in the trace, a failed span) cost a pass over
    the spans of the whole range, most of it over traces far older than the newest few: at
    10M spans "service + status=error" took 0.57 s. Newest first, the last 1/16 of the range
    usually holds ``limit`` matches (35 ms there); if it does, nothing older can rank above
    them, and only otherwise is the whole range searched."""
    recent = recent_window(search)
    if recent is not None:
        narrowed, roots_from = recent
        found = query_ids(client, trace_ids_query(narrowed, roots_from))
        if len(found) >= search.limit:
            return found
    return query_ids(client, trace_ids_query(search))


def matching_trace_ids_query(
    span: SpanMatch, time: TimeRange, limit: int
) -> tuple[str, dict[str, object]]:
    """Step one (Jaeger): the traces of the newest spans meeting every span condition."""
    spans = span.where(time)
    sql = (
        f"SELECT TraceId FROM {TRACES_TABLE} WHERE {spans.sql}"
        " ORDER BY Timestamp DESC, TraceId LIMIT 1 BY TraceId LIMIT {limit:UInt32}"
    )
    return sql, spans.bind(limit=limit)


_SUMMARY_COLUMNS = f"""
    TraceId,
    toUnixTimestamp64Nano(argMinIf(Timestamp, Timestamp, {ROOT})) AS root_start_ns,
    argMinIf(Duration, Timestamp, {ROOT}) AS root_duration_ns,
    argMinIf(ServiceName, Timestamp, {ROOT}) AS root_service,
    argMinIf(SpanName, Timestamp, {ROOT}) AS root_operation,
    count() AS span_count,
    max(IsError) AS has_error,
    arraySort(groupUniqArray(ServiceName)) AS services"""


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """A listed trace: its root span, and counts over all its stored spans."""

    trace_id: str
    start_ns: int
    duration_ns: int
    root_service: str
    root_operation: str
    span_count: int
    error: bool
    services: tuple[str, ...]


def query_ids(client: Client, query: tuple[str, dict[str, object]]) -> list[str]:
    """The ids a step-one query returns, first occurrence kept: a trace with two root spans
    (broken propagation) is listed once, at the cost of one fewer result."""
    sql, values = query
    return list(dict.fromkeys(row[0] for row in client.query(sql, parameters=values).result_rows))


def summarise(client: Client, trace_ids: list[str]) -> list[TraceSummary]:
    """Step two: summaries of ``trace_ids`` in the order given, over whole traces (bounded
    by the trace-id lookup table, like a trace fetch)."""
    where = trace_window(client, trace_ids)
    if where is None:
        return []
    sql = f"SELECT {_SUMMARY_COLUMNS} FROM {TRACES_TABLE} WHERE {where.sql} GROUP BY TraceId"
    by_id = {
        row[0]: TraceSummary(
            trace_id=row[0],
            start_ns=int(row[1]),
            duration_ns=int(row[2]),
            root_service=row[3],
            root_operation=row[4],
            span_count=int(row[5]),
            error=bool(row[6]),
            services=tuple(row[7]),
        )
        for row in client.query(sql, parameters=where.bind()).result_rows
    }
    return [by_id[tid] for tid in trace_ids if tid in by_id]
