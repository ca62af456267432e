"""``GET /api/v1/latency``: a time series of request counts, errors, rates and percentiles
per step (buckets as :mod:`otelhouse.query.steps` defines them)."""

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
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.storage.semantics import REQUEST
from otelhouse.query.stats import PERCENTILE_NOTE, REQUEST_STATS_SQL, RequestStats
from otelhouse.query.steps import BUCKET_SQL, StepDep, bucket_starts
from otelhouse.query.units import datetime_from_s
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["latency"])

_NS_PER_S = 1_000_000_000


class LatencyBucket(RequestStats):
    start: datetime = Field(description="Bucket start, UTC; the bucket is [start, start + step).")


class LatencyResponse(RangeResponse):
    step_s: int = Field(
        description="Bucket width in seconds; a bucket's rate_per_s is its requests over its "
        "seconds inside the range (the first and last buckets may be partly outside)."
    )
    buckets: list[LatencyBucket]


def latency_query(where: Where, step_s: int) -> tuple[str, dict[str, Any]]:
    sql = (
        f"SELECT {BUCKET_SQL} AS bucket, {REQUEST_STATS_SQL} FROM {TRACES_TABLE} WHERE {where.sql} "
        f"GROUP BY bucket ORDER BY bucket"
    )
    return sql, where.bind(step_s=step_s)


def seconds_inside(time_range: TimeRange, start_s: int, step_s: int) -> float:
    """Seconds of the bucket ``[start_s, start_s + step_s)`` that lie inside the range."""
    first = max(time_range.start_ns, start_s * _NS_PER_S)
    last = min(time_range.end_ns, (start_s + step_s) * _NS_PER_S)
    return max(last - first, 0) / _NS_PER_S


@router.get(
    "/latency",
    summary="Latency and errors over time",
    description=(
        "Requests (entry spans: kind Server or Consumer, or root spans), failed requests, "
        "error rate (errors / requests), request rate and percentiles per time bucket, for "
        "every service or one service and/or one operation (the request span's name). "
        f"{PERCENTILE_NOTE}"
    ),
)
def latency(
    client: ClientDep,
    time_range: TimeRangeDep,
    step_s: StepDep,
    service: ServiceParam = None,
    operation: OperationParam = None,
) -> LatencyResponse:
    where = span_filter(time_range, service=service, operation=operation).and_(REQUEST)
    found = {row["bucket"]: row for row in named_rows(client, latency_query(where, step_s))}
    buckets = []
    for start in bucket_starts(time_range, step_s):
        keys = {"start": datetime_from_s(start)}
        seconds = seconds_inside(time_range, start, step_s)
        row = found.get(start)
        buckets.append(
            LatencyBucket.from_row(row, seconds, **keys)
            if row
            else LatencyBucket.empty(seconds, **keys)
        )
    return LatencyResponse.covering(time_range, step_s=step_s, buckets=buckets)
