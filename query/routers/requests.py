"""The request views: ``/api/v1/summary``, ``/api/v1/endpoints/top``, ``/api/v1/requests/recent``.

They look at requests only — a service's entry spans: kind Server or Consumer, or root spans
(``storage/semantics.py``); errors are failed requests and error_rate is errors / requests. An endpoint is
(service, HTTP method, route), where the route is ``http.route`` or, for requests that are
not HTTP (gRPC, messaging consumers), the span name, so every request belongs to one. All
columns read here are the MATERIALIZED hot columns, not the attribute maps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import (
    RangeResponse,
    ServiceParam,
    Where,
    limit_param,
    named_rows,
    span_filter,
)
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.storage.semantics import ERROR, REQUEST
from otelhouse.query.stats import (
    PERCENTILE_NOTE,
    RATE_NOTE,
    active_seconds,
    error_rate,
    quantiles_ms,
)
from otelhouse.query.units import NS_PER_MS, datetime_from_ns, finite_or_none
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(prefix="/api/v1", tags=["requests"])

ROUTE = "if(HttpRoute != '', HttpRoute, SpanName)"
MAX_ENDPOINTS = 1000
MAX_RECENT = 1000
EndpointsLimit = limit_param(MAX_ENDPOINTS, "endpoints")
RecentLimit = limit_param(MAX_RECENT, "requests")
_REQUEST_LATENCY = (
    f"count() AS requests, countIf({ERROR}) AS errors, avg(Duration) / {NS_PER_MS} AS avg_ms, "
    f"{quantiles_ms(0.95)}[1] AS p95_ms, toUnixTimestamp64Nano(min(Timestamp)) AS first_ns, "
    f"toUnixTimestamp64Nano(max(Timestamp)) AS last_ns"
)


def request_filter(time_range: TimeRange, service: str | None) -> Where:
    return span_filter(time_range, service=service).and_(REQUEST)


class RequestLatency(BaseModel):
    requests: int = Field(description="Requests: entry spans (Server, Consumer or root).")
    errors: int = Field(description="Failed requests: StatusCode Error or HTTP status >= 500.")
    error_rate: float | None = Field(description="errors / requests; null without requests.")
    rate_per_s: float = Field(
        description="Requests per second from the first to the last request in the range "
        "(at least 1 s)."
    )
    avg_ms: float | None = Field(description="Mean duration, exact.")
    p95_ms: float | None = Field(description="95th percentile duration, within 1%.")

    @classmethod
    def fields_from(cls, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "requests": row["requests"],
            "errors": row["errors"],
            "error_rate": error_rate(row["errors"], row["requests"]),
            "rate_per_s": (
                row["requests"] / active_seconds(row["first_ns"], row["last_ns"])
                if row["requests"]
                else 0.0
            ),
            "avg_ms": finite_or_none(row["avg_ms"]),
            "p95_ms": finite_or_none(row["p95_ms"]),
        }


class SummaryResponse(RangeResponse, RequestLatency):
    endpoints: int = Field(description="Distinct (service, method, route) endpoints.")


class Endpoint(RequestLatency):
    service: str
    method: str = Field(description="HTTP method; empty for requests that are not HTTP.")
    route: str = Field(description="`http.route`, or the span name without one.")


class TopEndpointsResponse(RangeResponse):
    endpoints: list[Endpoint] = Field(description="Most requests first.")


class RecentRequest(BaseModel):
    time: datetime
    service: str
    method: str
    route: str
    status_code: int = Field(description="HTTP status code; 0 when not HTTP.")
    error: bool
    duration_ms: float
    client_address: str = Field(description="`client.address` (or `net.peer.ip`); may be empty.")
    trace_id: str
    span_id: str


class RecentRequestsResponse(RangeResponse):
    requests: list[RecentRequest] = Field(description="Newest first.")


def summary_query(time_range: TimeRange, service: str | None) -> tuple[str, dict[str, Any]]:
    where = request_filter(time_range, service)
    sql = (
        f"SELECT {_REQUEST_LATENCY}, uniqExact(ServiceName, HttpMethod, {ROUTE}) AS endpoints "
        f"FROM {TRACES_TABLE} WHERE {where.sql}"
    )
    return sql, where.bind()


def top_endpoints_query(
    time_range: TimeRange, service: str | None, limit: int
) -> tuple[str, dict[str, Any]]:
    where = request_filter(time_range, service)
    sql = (
        f"SELECT ServiceName AS service, HttpMethod AS method, {ROUTE} AS route, "
        f"{_REQUEST_LATENCY} FROM {TRACES_TABLE} WHERE {where.sql} "
        f"GROUP BY service, method, route ORDER BY requests DESC, service, method, route "
        f"LIMIT {{limit:UInt32}}"
    )
    return sql, where.bind(limit=limit)


def recent_requests_query(
    time_range: TimeRange, service: str | None, limit: int
) -> tuple[str, dict[str, Any]]:
    where = request_filter(time_range, service)
    sql = (
        f"SELECT toUnixTimestamp64Nano(Timestamp) AS time_ns, ServiceName AS service, "
        f"HttpMethod AS method, {ROUTE} AS route, HttpStatusCode AS status_code, "
        f"{ERROR} AS error, Duration / {NS_PER_MS} AS duration_ms, "
        f"ClientAddress AS client_address, TraceId AS trace_id, SpanId AS span_id "
        f"FROM {TRACES_TABLE} WHERE {where.sql} "
        f"ORDER BY Timestamp DESC, trace_id, span_id LIMIT {{limit:UInt32}}"
    )
    return sql, where.bind(limit=limit)


@router.get(
    "/summary",
    summary="Requests in the range: totals, errors, latency, endpoints",
    description=(
        "Over requests only: a service's entry spans (kind Server or Consumer, or root "
        "spans); errors are failed requests, error_rate = errors / requests. The same "
        f"numbers /api/v1/services gives per service. {RATE_NOTE} {PERCENTILE_NOTE}"
    ),
)
def summary(
    client: ClientDep, time_range: TimeRangeDep, service: ServiceParam = None
) -> SummaryResponse:
    row = next(named_rows(client, summary_query(time_range, service)))
    return SummaryResponse.covering(
        time_range, endpoints=row["endpoints"], **RequestLatency.fields_from(row)
    )


@router.get(
    "/endpoints/top",
    summary="Most used endpoints (method + route)",
    description=(
        "Endpoints (service, HTTP method, route or span name) by number of requests (entry "
        f"spans). {RATE_NOTE} {PERCENTILE_NOTE}"
    ),
)
def top_endpoints(
    client: ClientDep,
    time_range: TimeRangeDep,
    service: ServiceParam = None,
    limit: EndpointsLimit = 10,
) -> TopEndpointsResponse:
    rows = named_rows(client, top_endpoints_query(time_range, service, limit))
    return TopEndpointsResponse.covering(
        time_range,
        endpoints=[
            Endpoint(
                service=row["service"],
                method=row["method"],
                route=row["route"],
                **RequestLatency.fields_from(row),
            )
            for row in rows
        ],
    )


@router.get(
    "/requests/recent",
    summary="The newest requests",
    description=(
        "The newest requests (entry spans: kind Server or Consumer, or root spans), newest "
        "first: time, method, route, status, latency, client and trace id."
    ),
)
def recent_requests(
    client: ClientDep,
    time_range: TimeRangeDep,
    service: ServiceParam = None,
    limit: RecentLimit = 50,
) -> RecentRequestsResponse:
    rows = named_rows(client, recent_requests_query(time_range, service, limit))
    return RecentRequestsResponse.covering(
        time_range,
        requests=[
            RecentRequest(time=datetime_from_ns(row.pop("time_ns")), **row) for row in rows
        ],
    )
