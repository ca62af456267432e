"""``GET /api/v1/operations``: the service statistics per (service, operation), sortable."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, ServiceParam, limit_param, named_rows, span_filter
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.query.stats import PERCENTILE_NOTE, QUANTILE_LEVELS, SPAN_STATS_SQL, SpanStats
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["operations"])

MAX_OPERATIONS = 1000
Limit = limit_param(MAX_OPERATIONS, "operations")
Sort = Literal["count", "p99", "error_rate"]
_ORDER_BY: dict[str, str] = {
    "count": "spans DESC",
    "p99": f"percentiles_ms[{QUANTILE_LEVELS.index(0.99) + 1}] DESC",
    "error_rate": "errors / spans DESC, errors DESC",
}


class OperationStats(SpanStats):
    service: str = Field(description="`service.name` of the spans.")
    operation: str = Field(description="Span name.")


class OperationsResponse(RangeResponse):
    operations: list[OperationStats]


def operations_query(
    time_range: TimeRange, service: str | None, sort: Sort, limit: int
) -> tuple[str, dict[str, Any]]:
    """``sort`` picks an ORDER BY from an allowlist; ties are broken by name so pages of the
    same data come back in the same order."""
    where = span_filter(time_range, service=service)
    sql = (
        f"SELECT ServiceName AS service, SpanName AS operation, {SPAN_STATS_SQL} "
        f"FROM {TRACES_TABLE} WHERE {where.sql} GROUP BY service, operation "
        f"ORDER BY {_ORDER_BY[sort]}, service, operation LIMIT {{limit:UInt32}}"
    )
    return sql, where.bind(limit=limit)


@router.get(
    "/operations",
    summary="Operations (span names) with counts, errors and latency",
    description=f"One row per service and span name, sorted by `sort`. {PERCENTILE_NOTE}",
)
def operations(
    client: ClientDep,
    time_range: TimeRangeDep,
    service: ServiceParam = None,
    sort: Annotated[Sort, Query(description="Most spans, slowest p99 or most failing first.")] = (
        "count"
    ),
    limit: Limit = 100,
) -> OperationsResponse:
    rows = named_rows(client, operations_query(time_range, service, sort, limit))
    return OperationsResponse.covering(
        time_range,
        operations=[
            OperationStats.from_row(
                row, time_range.seconds, service=row["service"], operation=row["operation"]
            )
            for row in rows
        ],
    )
