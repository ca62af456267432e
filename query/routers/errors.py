"""``GET /api/v1/errors``: where the failed requests are, per operation or HTTP status code.

It counts requests (entry spans) and failed requests by the rules of ``storage/semantics.py``
(StatusCode Error or HTTP status >= 500 on the entry span), so a 404 or 409 a service's
outgoing call received is not an error of that service. Groups are (service, request span
name) or (service, the request's HTTP status code; 0 for requests without one), only those
with errors, most errors first. The totals over the whole filter come from the
same scan (``GROUPING SETS`` with an empty set), not from a second query.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, ServiceParam, limit_param, named_rows, span_filter
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.storage.semantics import ERROR, REQUEST
from otelhouse.query.stats import error_rate
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["errors"])

MAX_GROUPS = 1000
Limit = limit_param(MAX_GROUPS, "groups")
GroupBy = Literal["operation", "status_code"]
_GROUP_COLUMN: dict[str, str] = {"operation": "SpanName", "status_code": "HttpStatusCode"}


class ErrorGroup(BaseModel):
    service: str
    operation: str | None = Field(
        None, description="Span name of the requests (group_by=operation)."
    )
    status_code: int | None = Field(
        None,
        description="HTTP status code of the requests, 0 when they had none "
        "(group_by=status_code).",
    )
    requests: int = Field(description="Requests in the group.")
    errors: int = Field(description="Failed requests in the group.")
    error_rate: float = Field(description="errors / requests of the group.")


class ErrorsResponse(RangeResponse):
    group_by: GroupBy
    requests: int = Field(description="Requests matching the filter.")
    errors: int = Field(description="Failed requests matching the filter.")
    error_rate: float | None = Field(description="errors / requests; null without requests.")
    groups: list[ErrorGroup] = Field(description="Groups with at least one error.")


def errors_query(
    time_range: TimeRange, service: str | None, group_by: GroupBy, limit: int
) -> tuple[str, dict[str, Any]]:
    """The first row is the total (``is_total``), then up to ``limit`` groups."""
    where = span_filter(time_range, service=service).and_(REQUEST)
    sql = (
        f"SELECT ServiceName AS service, {_GROUP_COLUMN[group_by]} AS key, count() AS requests, "
        f"countIf({ERROR}) AS errors, grouping(service, key) != 0 AS is_total "
        f"FROM {TRACES_TABLE} WHERE {where.sql} "
        f"GROUP BY GROUPING SETS ((service, key), ()) HAVING errors > 0 OR is_total "
        f"ORDER BY is_total DESC, errors DESC, service, key LIMIT {{rows:UInt32}}"
    )
    return sql, where.bind(rows=limit + 1)


@router.get(
    "/errors",
    summary="Failed requests per operation or HTTP status code",
    description=(
        "Requests (entry spans: kind Server or Consumer, or root spans) and failed requests "
        "(StatusCode Error or HTTP status >= 500) for the filter, and the groups with failed "
        "requests, most first; error_rate = errors / requests. Outgoing calls are not "
        "counted: see /api/v1/operations?kind=Client for them."
    ),
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
    total = next((row for row in rows if row["is_total"]), {"requests": 0, "errors": 0})
    groups = [
        ErrorGroup(
            service=row["service"],
            requests=row["requests"],
            errors=row["errors"],
            error_rate=row["errors"] / row["requests"],
            **{group_by: row["key"]},
        )
        for row in rows
        if not row["is_total"]
    ]
    return ErrorsResponse.covering(
        time_range,
        group_by=group_by,
        requests=total["requests"],
        errors=total["errors"],
        error_rate=error_rate(total["errors"], total["requests"]),
        groups=groups,
    )
