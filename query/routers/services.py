"""``GET /api/v1/services``: per service, span and request counts, errors, rate and latency."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, named_rows, span_filter
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.query.stats import PERCENTILE_NOTE, SPAN_STATS_SQL, SpanStats
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["services"])


class ServiceStats(SpanStats):
    service: str = Field(description="`service.name` of the spans.")


class ServicesResponse(RangeResponse):
    services: list[ServiceStats]


def services_query(time_range: TimeRange) -> tuple[str, dict[str, Any]]:
    where = span_filter(time_range)
    sql = (
        f"SELECT ServiceName AS service, {SPAN_STATS_SQL} FROM {TRACES_TABLE} "
        f"WHERE {where.sql} GROUP BY service ORDER BY service"
    )
    return sql, where.bind()


@router.get(
    "/services",
    summary="Services with span counts, errors and latency",
    description=f"One row per service with spans in the range, by name. {PERCENTILE_NOTE}",
)
def services(client: ClientDep, time_range: TimeRangeDep) -> ServicesResponse:
    rows = named_rows(client, services_query(time_range))
    return ServicesResponse.covering(
        time_range,
        services=[
            ServiceStats.from_row(row, time_range.seconds, service=row["service"]) for row in rows
        ],
    )
