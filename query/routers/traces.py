"""``/api/v1/traces``: trace search (summaries) and one trace with all its spans."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import (
    OperationParam,
    ServiceParam,
    attr_param,
    invalid,
    limit_param,
    parse_attributes,
)
from otelhouse.query.logs import trace_logs
from otelhouse.query.params import TimeRangeDep
from otelhouse.query.trace_fetch import fetch_trace, normalise_trace_id, span_bounds
from otelhouse.query.trace_json import TraceOut, TraceSearchOut, TraceSummaryOut
from otelhouse.query.trace_search import (
    MAX_LIMIT,
    Order,
    SpanMatch,
    Status,
    TraceSearch,
    find_trace_ids,
    summarise,
)
from otelhouse.query.units import NS_PER_MS

router = APIRouter(prefix="/api/v1/traces", tags=["traces"])

MAX_DURATION_MS = 10**12
"""Duration filters above this (about 31 years) cannot be expressed in Int64 nanoseconds."""

DurationMs = Annotated[
    float | None,
    Query(ge=0, le=MAX_DURATION_MS, description="Root span duration bound, milliseconds."),
]

SpanAttrParam = attr_param("span attribute", "every pair must hold on the same span")


def _ns(ms: float | None) -> int | None:
    return None if ms is None else round(ms * NS_PER_MS)


@router.get("", response_model=TraceSearchOut)
def search_traces(
    client: ClientDep,
    time_range: TimeRangeDep,
    service: ServiceParam = None,
    operation: OperationParam = None,
    attr: SpanAttrParam = [],  # noqa: B006 - FastAPI copies defaults per request
    min_duration_ms: DurationMs = None,
    max_duration_ms: DurationMs = None,
    status_: Annotated[
        Status | None,
        Query(
            alias="status",
            description="error: some span failed in the time range; ok: none did.",
        ),
    ] = None,
    limit: limit_param(MAX_LIMIT, "traces") = 20,
    order: Annotated[
        Order, Query(description="newest/oldest by start, slowest/fastest by duration.")
    ] = Order.NEWEST,
) -> TraceSearchOut:
    """Traces whose root span starts in the time range, with a span matching service,
    operation and every attr together; duration bounds and order apply to the root span,
    status to the whole trace. Summaries count every stored span of each trace."""
    if None not in (min_duration_ms, max_duration_ms) and min_duration_ms > max_duration_ms:
        raise invalid("max_duration_ms", "must not be below min_duration_ms")
    search = TraceSearch(
        time=time_range,
        span=SpanMatch(service=service, operation=operation, attributes=parse_attributes(attr)),
        min_duration_ns=_ns(min_duration_ms),
        max_duration_ns=_ns(max_duration_ms),
        status=status_,
        order=order,
        limit=limit,
    )
    summaries = summarise(client, find_trace_ids(client, search))
    return TraceSearchOut(
        traces=[TraceSummaryOut.from_summary(s) for s in summaries], limit=limit
    )


@router.get(
    "/{trace_id}",
    response_model=TraceOut,
    responses={400: {"description": "Not 32 hex digits."}, 404: {"description": "Unknown."}},
)
def get_trace(client: ClientDep, trace_id: str) -> TraceOut:
    """Every span of the trace, ordered by start (any case of hex digits is accepted), and
    the trace's log records, oldest first."""
    normalised = normalise_trace_id(trace_id)
    if normalised is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="trace_id must be 32 hexadecimal characters"
        )
    spans = fetch_trace(client, normalised)
    if not spans:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"trace {normalised} not found")
    logs = trace_logs(client, normalised, *span_bounds(spans))
    return TraceOut.from_spans(normalised, spans, logs)
