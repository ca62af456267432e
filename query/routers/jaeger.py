"""``/jaeger/api``: the Jaeger query-service HTTP API over ``otel_traces``.

Point Grafana's Jaeger datasource (URL ``http://<otelhouse>/jaeger``) or Jaeger UI's query
base at it. Services and operations are listed over the whole retention, as Jaeger does;
searches are bounded by ``start``/``end`` or ``lookback`` (capped like ``/api/v1``).
Errors come in Jaeger's envelope with Jaeger's codes: 400 for any malformed parameter
(FastAPI's own validation included, see ``query/jaeger_errors.py``), 404 for unknown traces.
Unlike Jaeger, a search without ``service`` is allowed: it spans every service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from otelhouse.query.deps import ClientDep
from otelhouse.query.jaeger_errors import (
    MALFORMED,
    NOT_FOUND,
    OTHER_CLIENT_ERRORS,
    JaegerRoute,
    error_response,
)
from otelhouse.query.jaeger_model import JAEGER_KINDS, OTEL_KINDS, envelope, jaeger_trace
from otelhouse.query.jaeger_params import (
    MAX_LIMIT,
    BadParameter,
    parse_dependencies_range,
    parse_limit,
    parse_tags,
    parse_time_range,
    span_match,
)
from otelhouse.query.service_map import service_edges
from otelhouse.query.trace_fetch import fetch_traces, normalise_trace_id
from otelhouse.query.trace_search import matching_trace_ids_query, query_ids
from otelhouse.storage.tables import TRACES_TABLE

router = APIRouter(
    prefix="/jaeger/api", tags=["jaeger"], route_class=JaegerRoute, responses=OTHER_CLIENT_ERRORS
)

SERVICES_SQL = f"SELECT DISTINCT ServiceName FROM {TRACES_TABLE} ORDER BY ServiceName"
OPERATION_NAMES_SQL = (
    f"SELECT DISTINCT SpanName FROM {TRACES_TABLE} WHERE ServiceName = {{service:String}}"
    " ORDER BY SpanName"
)
OPERATIONS_SQL = (
    f"SELECT SpanName, SpanKind FROM {TRACES_TABLE} WHERE ServiceName = {{service:String}}"
    " AND (SpanKind = {kind:String} OR {kind:String} = '')"
    " GROUP BY SpanName, SpanKind ORDER BY SpanName, SpanKind"
)

OptionalText = Annotated[str | None, Query()]
SpanKind = Literal["", "server", "client", "producer", "consumer", "internal"]


def _ok(data: Any) -> JSONResponse:
    return JSONResponse(envelope(data))


def _jaeger_trace_id(value: str) -> str | None:
    """Jaeger ids may be 64-bit or unpadded: left-pad to 32 hex digits."""
    text = value.strip()
    return normalise_trace_id(text.rjust(32, "0")) if 0 < len(text) <= 32 else None


def _requested_ids(values: list[str]) -> list[str]:
    ids = [_jaeger_trace_id(value) for value in values[:MAX_LIMIT]]
    if None in ids:
        raise BadParameter("traceID", "expected up to 32 hexadecimal characters")
    return list(dict.fromkeys(ids))


@router.get("/services")
def services(client: ClientDep) -> JSONResponse:
    return _ok([row[0] for row in client.query(SERVICES_SQL).result_rows])


@router.get("/services/{service}/operations")
def service_operations(client: ClientDep, service: str) -> JSONResponse:
    rows = client.query(OPERATION_NAMES_SQL, parameters={"service": service}).result_rows
    return _ok([row[0] for row in rows])


@router.get("/operations", responses=MALFORMED)
def operations(
    client: ClientDep,
    service: Annotated[str, Query(min_length=1)],
    spanKind: Annotated[SpanKind, Query(description="Empty: every kind.")] = "",  # noqa: N803
) -> JSONResponse:
    """Operations of ``service`` with their kind, optionally only one kind."""
    rows = client.query(
        OPERATIONS_SQL,
        parameters={"service": service, "kind": OTEL_KINDS.get(spanKind, "")},
    ).result_rows
    return _ok([{"name": name, "spanKind": JAEGER_KINDS.get(kind, "")} for name, kind in rows])


@router.get("/traces", responses=MALFORMED)
def find_traces(
    client: ClientDep,
    service: OptionalText = None,
    operation: OptionalText = None,
    tags: Annotated[str | None, Query(description='JSON object, e.g. {"error":"true"}')] = None,
    tag: Annotated[list[str], Query(description="key:value, repeatable")] = [],  # noqa: B006
    minDuration: OptionalText = None,  # noqa: N803
    maxDuration: OptionalText = None,  # noqa: N803
    start: Annotated[str | None, Query(description="Epoch microseconds.")] = None,
    end: Annotated[str | None, Query(description="Epoch microseconds.")] = None,
    lookback: Annotated[str | None, Query(description="1h, 2d... when no start.")] = None,
    limit: Annotated[str | None, Query(description="Traces, default 20, at most 1500.")] = None,
    traceID: Annotated[  # noqa: N803
        list[str], Query(description="Fetch these ids instead of searching.")
    ] = [],  # noqa: B006
) -> JSONResponse:
    """Newest traces with a span matching service, operation, tags and duration together,
    each returned whole (every span), as Jaeger's search does."""
    try:
        if traceID:
            trace_ids = _requested_ids(traceID)
        else:
            query = matching_trace_ids_query(
                span_match(service, operation, parse_tags(tags, tag), minDuration, maxDuration),
                parse_time_range(start, end, lookback),
                parse_limit(limit),
            )
            trace_ids = query_ids(client, query)
    except BadParameter as exc:
        return error_response(400, str(exc))
    traces = fetch_traces(client, trace_ids)
    return _ok([jaeger_trace(tid, spans) for tid, spans in traces.items()])


@router.get("/traces/{trace_id}", responses={**MALFORMED, **NOT_FOUND})
def get_trace(client: ClientDep, trace_id: str) -> JSONResponse:
    normalised = _jaeger_trace_id(trace_id)
    if normalised is None:
        return error_response(400, "traceID: expected up to 32 hexadecimal characters")
    traces = fetch_traces(client, [normalised])
    if not traces:
        return error_response(404, f"trace not found: {normalised}")
    return _ok([jaeger_trace(normalised, traces[normalised])])


@router.get("/dependencies", responses=MALFORMED)
def dependencies(
    client: ClientDep,
    endTs: Annotated[str | None, Query(description="Epoch milliseconds; default now.")] = None,  # noqa: N803
    lookback: Annotated[
        str | None, Query(description="Milliseconds before endTs; default 24 h.")
    ] = None,
) -> JSONResponse:
    """Calls between services in ``(endTs - lookback, endTs]``, as Jaeger UI's System
    Architecture view reads them: ``[{parent, child, callCount}]``, the edges of
    ``/api/v1/service-map``."""
    try:
        time_range = parse_dependencies_range(endTs, lookback)
    except BadParameter as exc:
        return error_response(400, str(exc))
    return _ok(
        [
            {"parent": edge.caller, "child": edge.callee, "callCount": edge.calls}
            for edge in service_edges(client, time_range)
        ]
    )
