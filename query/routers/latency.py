"""``GET /api/v1/latency``: a time series of counts, errors and percentiles per step
(buckets as :mod:`otelhouse.query.steps` defines them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import (
    OperationParam,
    RangeResponse,
    ServiceParam,
    Where,
    named_rows,
    span_filter,
)
from otelhouse.query.params import TimeRangeDep
from otelhouse.query.stats import PERCENTILE_NOTE, SPAN_STATS_SQL, SpanStats
from otelhouse.query.steps import BUCKET_SQL, StepDep, bucket_starts
from otelhouse.query.units import datetime_from_s
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["latency"])


class LatencyBucket(SpanStats):
    start: datetime = Field(description="Bucket start, UTC; the bucket is [start, start + step).")


class LatencyResponse(RangeResponse):
    step_s: int = Field(description="Bucket width in seconds; rate_per_s is per bucket width.")
    buckets: list[LatencyBucket]


def latency_query(where: Where, step_s: int) -> tuple[str, dict[str, Any]]:
    sql = (
        f"SELECT {BUCKET_SQL} AS bucket, {SPAN_STATS_SQL} FROM {TRACES_TABLE} WHERE {where.sql} "
        f"GROUP BY bucket ORDER BY bucket"
    )
    return sql, where.bind(step_s=step_s)


@router.get(
    "/latency",
    summary="Latency and errors over time",
    description=(
        "Counts, errors and percentiles per time bucket, for all spans or those of a "
        f"service and/or operation. {PERCENTILE_NOTE}"
    ),
)
def latency(
    client: ClientDep,
    time_range: TimeRangeDep,
    step_s: StepDep,
    service: ServiceParam = None,
    operation: OperationParam = None,
) -> LatencyResponse:
    where = span_filter(time_range, service=service, operation=operation)
    found = {row["bucket"]: row for row in named_rows(client, latency_query(where, step_s))}
    buckets = []
    for start in bucket_starts(time_range, step_s):
        keys = {"start": datetime_from_s(start)}
        row = found.get(start)
        buckets.append(
            LatencyBucket.from_row(row, step_s, **keys)
            if row
            else LatencyBucket.empty(step_s, **keys)
        )
    return LatencyResponse.covering(time_range, step_s=step_s, buckets=buckets)
