"""``GET /api/v1/errors``: where the errors are, per operation or per HTTP status code.

"Error" is the one rule of ``storage/semantics.py`` (StatusCode Error or HTTP status >= 500).
Groups are (service, operation) or (service, HTTP status code; 0 for spans without one),
only those with errors, most errors first. The totals over the whole filter come from the
same scan (``GROUPING SETS`` with an empty set), not from a second query.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, ServiceParam, limit_param, named_rows, span_filter
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.storage.semantics import ERROR
from otelhouse.query.stats import error_rate
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["errors"])

MAX_GROUPS = 1000
Limit = limit_param(MAX_GROUPS, "groups")
GroupBy = Literal["operation", "status_code"]
_GROUP_COLUMN: dict[str, str] = {"operation": "SpanName", "status_code": "HttpStatusCode"}


class ErrorGroup(BaseModel):
    service: str
    operation: str | None = Field(None, description="Span name (group_by=operation).")
    status_code: int | None = Field(
        None, description="HTTP status code, 0 when the spans had none (group_by=status_code)."
    )
    spans: int = Field(description="Spans in the group.")
    errors: int = Field(description="Failed spans in the group.")
    error_rate: float = Field(description="errors / spans of the group.")


class ErrorsResponse(RangeResponse):
    group_by: GroupBy
    spans: int = Field(description="Spans matching the filter.")
    errors: int = Field(description="Failed spans matching the filter.")
    error_rate: float | None = Field(description="errors / spans; null without spans.")
    groups: list[ErrorGroup] = Field(description="Groups with at least one error.")


def errors_query(
    time_range: TimeRange, service: str | None, group_by: GroupBy, limit: int
) -> tuple[str, dict[str, Any]]:
    """The first row is the total (``is_total``), then up to ``limit`` groups."""
    where = span_filter(time_range, service=service)
    sql = (
        f"SELECT ServiceName AS service, {_GROUP_COLUMN[group_by]} AS key, count() AS spans, "
        f"countIf({ERROR}) AS errors, grouping(service, key) != 0 AS is_total "
        f"FROM {TRACES_TABLE} WHERE {where.sql} "
        f"GROUP BY GROUPING SETS ((service, key), ()) HAVING errors > 0 OR is_total "
        f"ORDER BY is_total DESC, errors DESC, service, key LIMIT {{rows:UInt32}}"
    )
    return sql, where.bind(rows=limit + 1)


@router.get(
    "/errors",
    summary="Error counts and rates per operation or HTTP status code",
    description="Totals for the filter and the groups with errors, most errors first.",
)
def errors(
    client: ClientDep,
    time_range: TimeRangeDep,
    service: ServiceParam = None,
    group_by: Annotated[GroupBy, Query(description="Group errors by span name or HTTP status.")] = (
        "operation"
    ),
    limit: Limit = 100,
) -> ErrorsResponse:
    rows = list(named_rows(client, errors_query(time_range, service, group_by, limit)))
    total = next((row for row in rows if row["is_total"]), {"spans": 0, "errors": 0})
    groups = [
        ErrorGroup(
            service=row["service"],
            spans=row["spans"],
            errors=row["errors"],
            error_rate=row["errors"] / row["spans"],
            **{group_by: row["key"]},
        )
        for row in rows
        if not row["is_total"]
    ]
    return ErrorsResponse.covering(
        time_range,
        group_by=group_by,
        spans=total["spans"],
        errors=total["errors"],
        error_rate=error_rate(total["errors"], total["spans"]),
        groups=groups,
    )
