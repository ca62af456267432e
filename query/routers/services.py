"""``GET /api/v1/services``: per service, how its requests are doing (request-level RED)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, named_rows, span_filter
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.query.stats import PERCENTILE_NOTE, RATE_NOTE, REQUEST_STATS_SQL, RequestStats
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["services"])


class ServiceStats(RequestStats):
    service: str = Field(description="`service.name` of the spans.")
    spans: int = Field(
        description="All spans of the service in the range: requests, outgoing calls and "
        "internal work (not used by the other numbers)."
    )


class ServicesResponse(RangeResponse):
    services: list[ServiceStats]


def services_query(time_range: TimeRange) -> tuple[str, dict[str, Any]]:
    where = span_filter(time_range)
    sql = (
        f"SELECT ServiceName AS service, count() AS spans, {REQUEST_STATS_SQL} "
        f"FROM {TRACES_TABLE} WHERE {where.sql} GROUP BY service ORDER BY service"
    )
    return sql, where.bind()


@router.get(
    "/services",
    summary="Services: their requests, errors, rate and latency",
    description=(
        "One row per service with spans in the range, by name. Requests are the service's "
        "entry spans (kind Server or Consumer, or root spans); errors, error_rate (errors / "
        "requests), rate and percentiles are over those requests only — a service's "
        "outgoing calls and internal spans are counted in `spans` and nowhere else. "
        f"{RATE_NOTE} {PERCENTILE_NOTE}"
    ),
)
def services(client: ClientDep, time_range: TimeRangeDep) -> ServicesResponse:
    rows = named_rows(client, services_query(time_range))
    return ServicesResponse.covering(
        time_range,
        services=[
            ServiceStats.from_row(row, service=row["service"], spans=row["spans"])
            for row in rows
        ],
    )
