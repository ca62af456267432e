"""``GET /api/v1/service-map``: the calls between services over a range
(:mod:`otelhouse.query.service_map`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse
from otelhouse.query.params import TimeRangeDep
from otelhouse.query.service_map import PARENT_LOOKBACK, Edge, service_edges

router = APIRouter(prefix="/api/v1", tags=["service map"])


class ServiceMapResponse(RangeResponse):
    edges: list[Edge] = Field(description="By caller, then callee.")


@router.get(
    "/service-map",
    summary="Which services call which: calls, errors and p95 per edge",
    description=(
        "One edge per (caller, callee) with calls in the range. A call is a callee's entry "
        "span (kind Server or Consumer, or root) whose parent span belongs to another "
        "service, or a Client/Producer span naming a peer (`peer.service`, `server.address`) "
        "that no span answers (a database, an external API). A call counts in the range its "
        "callee's span starts in; its caller's span may start up to "
        f"{int(PARENT_LOOKBACK.total_seconds() // 60)} minutes earlier. p95 is within 1%. "
        "Minutes that ended over 5 minutes ago are read from a rollup (spans arriving later "
        "than that are not counted), the rest from the spans."
    ),
)
def service_map(client: ClientDep, time_range: TimeRangeDep) -> ServiceMapResponse:
    return ServiceMapResponse.covering(time_range, edges=service_edges(client, time_range))
