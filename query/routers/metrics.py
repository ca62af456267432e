"""``GET /api/v1/metrics`` (the metrics with points in a range) and
``GET /api/v1/metrics/query`` (time series of one metric, aggregated per step in ClickHouse;
the semantics of increments, resets and percentiles are in :mod:`otelhouse.query.metrics`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, invalid, named_rows, parse_attributes
from otelhouse.query.metrics import (
    AGGREGATIONS,
    MAX_GROUP_BY,
    TEMPORALITIES,
    SeriesRequest,
    catalogue_query,
    metric_type_query,
    series_json,
    series_query,
)
from otelhouse.query.params import TimeRangeDep
from otelhouse.query.steps import StepDep
from otelhouse.storage.metrics import TABLES_BY_KIND

router = APIRouter(prefix="/api/v1", tags=["metrics"])

MetricServiceParam = Annotated[
    str | None, Query(description="Only points of this service (`service.name`, exact match).")
]


class MetricInfo(BaseModel):
    name: str
    type: str = Field(description="gauge | sum | histogram | exponential_histogram | summary")
    unit: str
    description: str
    services: list[str]
    attribute_keys: list[str] = Field(description="Keys of the points' attributes.")
    monotonic: bool | None = Field(None, description="Sums only: a counter (never decreases).")
    temporality: str | None = Field(
        None, description="Sums and histograms: delta | cumulative | unspecified."
    )


class MetricsResponse(RangeResponse):
    metrics: list[MetricInfo]


class Series(BaseModel):
    labels: dict[str, str] = Field(description="The group_by attributes' values.")
    points: list[tuple[int, float]] = Field(description="[bucket start (epoch s), value]")


class SeriesResponse(RangeResponse):
    name: str
    type: str
    agg: str
    step_s: int
    series: list[Series]


@router.get(
    "/metrics",
    summary="Metrics with points in the range",
    description="One entry per metric name and type, by name.",
)
def metrics(
    client: ClientDep, time_range: TimeRangeDep, service: MetricServiceParam = None
) -> MetricsResponse:
    rows = named_rows(client, catalogue_query(time_range, service))
    return MetricsResponse.covering(
        time_range,
        metrics=[
            MetricInfo(
                **{key: row[key] for key in ("name", "type", "unit", "description", "services")},
                attribute_keys=row["attribute_keys"],
                monotonic=row["monotonic"],
                temporality=None
                if row["temporality"] is None
                else TEMPORALITIES.get(row["temporality"], "unspecified"),
            )
            for row in rows
        ],
    )


@router.get(
    "/metrics/query",
    summary="Time series of one metric",
    description=(
        "The metric's points aggregated per step and group. `agg` per type: gauges "
        "avg|min|max|last; sums rate|increase (per second / per step, across counter resets "
        "and restarts) or avg|min|max|last; histograms p50|p90|p95|p99 (linear interpolation "
        "within the bucket of summed bucket counts), avg (sum/count) or rate (of the count); "
        "exponential histograms and summaries avg|rate."
    ),
)
def metric_query(
    client: ClientDep,
    time_range: TimeRangeDep,
    step_s: StepDep,
    name: Annotated[str, Query(description="Metric name (exact match).")],
    service: MetricServiceParam = None,
    where: Annotated[
        list[str],
        Query(
            description="key:value point attribute filter, split at the first colon; "
            "repeatable, all must match."
        ),
    ] = [],  # noqa: B006 - FastAPI copies defaults per request
    group_by: Annotated[
        list[str],
        Query(description=f"Point attribute key to group by; repeatable, at most {MAX_GROUP_BY}."),
    ] = [],  # noqa: B006
    agg: Annotated[str | None, Query(description="Aggregation; default the type's first.")] = None,
) -> SeriesResponse:
    if len(group_by) > MAX_GROUP_BY:
        raise invalid("group_by", f"at most {MAX_GROUP_BY} group_by keys")
    filters = parse_attributes(where, "where")
    kinds = [row["type"] for row in named_rows(client, metric_type_query(name, time_range))]
    if not kinds:
        raise invalid("name", "no metric of this name has points in the range")
    table = TABLES_BY_KIND[kinds[0]]
    allowed = AGGREGATIONS[table]
    chosen = agg if agg is not None else allowed[0]
    if chosen not in allowed:
        raise invalid("agg", f"a {table.kind} metric takes agg {'|'.join(allowed)}")
    request = SeriesRequest(
        table, name, chosen, step_s, time_range, service, filters, tuple(group_by)
    )
    rows = list(named_rows(client, series_query(request)))
    return SeriesResponse.covering(
        time_range,
        name=name,
        type=table.kind,
        agg=chosen,
        step_s=step_s,
        series=[Series(**s) for s in series_json(rows, group_by)],
    )
