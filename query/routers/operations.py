"""``GET /api/v1/operations``: span statistics per (service, span name, kind), sortable."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, ServiceParam, limit_param, named_rows, span_filter
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.query.stats import (
    PERCENTILE_NOTE,
    QUANTILE_LEVELS,
    RATE_NOTE,
    SPAN_STATS_SQL,
    SpanStats,
)
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["operations"])

MAX_OPERATIONS = 1000
Limit = limit_param(MAX_OPERATIONS, "operations")
Sort = Literal["count", "p99", "error_rate"]
SpanKind = Literal["Server", "Client", "Internal", "Producer", "Consumer", "Unspecified"]
_ORDER_BY: dict[str, str] = {
    "count": "n DESC",
    "p99": f"percentiles_ms[{QUANTILE_LEVELS.index(0.99) + 1}] DESC",
    "error_rate": "errors / n DESC, errors DESC",
}
KIND = "SpanKind = {kind:String}"


class OperationStats(SpanStats):
    service: str = Field(description="`service.name` of the spans.")
    operation: str = Field(description="Span name.")
    kind: str = Field(
        description="Span kind: Server and Consumer spans are requests the service served, "
        "Client and Producer spans its outgoing calls, Internal its own work."
    )


class OperationsResponse(RangeResponse):
    operations: list[OperationStats]


def operations_query(
    time_range: TimeRange, service: str | None, kind: str | None, sort: Sort, limit: int
) -> tuple[str, dict[str, Any]]:
    """``sort`` picks an ORDER BY from an allowlist; ties are broken by name and kind so
    pages of the same data come back in the same order."""
    where = span_filter(time_range, service=service)
    if kind is not None:
        where = where.and_(KIND, kind=kind)
    sql = (
        f"SELECT ServiceName AS service, SpanName AS operation, SpanKind AS kind, "
        f"{SPAN_STATS_SQL} FROM {TRACES_TABLE} WHERE {where.sql} "
        f"GROUP BY service, operation, kind "
        f"ORDER BY {_ORDER_BY[sort]}, service, operation, kind LIMIT {{limit:UInt32}}"
    )
    return sql, where.bind(limit=limit)


@router.get(
    "/operations",
    summary="Operations (span name and kind) with span counts, errors and latency",
    description=(
        "One row per service, span name and span kind, sorted by `sort`. Counts every span "
        "of the group, so a Client row is the service's outgoing calls of that name (their "
        "errors are calls that failed, not the service's requests failing). "
        f"{RATE_NOTE} {PERCENTILE_NOTE}"
    ),
)
def operations(
    client: ClientDep,
    time_range: TimeRangeDep,
    service: ServiceParam = None,
    kind: Annotated[SpanKind | None, Query(description="Only spans of this kind.")] = None,
    sort: Annotated[Sort, Query(description="Most spans, slowest p99 or most failing first.")] = (
        "count"
    ),
    limit: Limit = 100,
) -> OperationsResponse:
    rows = named_rows(client, operations_query(time_range, service, kind, sort, limit))
    return OperationsResponse.covering(
        time_range,
        operations=[
            OperationStats.from_row(
                row, service=row["service"], operation=row["operation"], kind=row["kind"]
            )
            for row in rows
        ],
    )
