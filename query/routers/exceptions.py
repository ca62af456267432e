"""``GET /api/v1/exceptions``: exceptions recorded as span events, grouped like an error
tracker groups them.

Source: span events named ``exception`` (the OTel convention ``span.record_exception``
follows), their ``exception.type``, ``exception.message`` and ``exception.stacktrace``
attributes. Groups are (service, type, normalised message), where normalising masks what
varies between occurrences of the same problem, in ClickHouse with ``replaceRegexpAll``, in
this order: UUIDs → ``<uuid>``; hex words (``0x``-prefixed, or mixing digits with ``a-f``
letters, e.g. ids and addresses) → ``<hex>``; any remaining digit run → ``<n>``.
The events are read from ``otelhouse_exceptions`` (migration 0004), one row per exception
event filled on insert by a materialized view: scanning them out of ``otel_traces`` read the
whole event columns, since exceptions are spread over every granule. The time range applies
to the event's own time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, ServiceParam, limit_param, named_rows, span_filter
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.query.units import datetime_from_ns

router = APIRouter(prefix="/api/v1", tags=["exceptions"])

EXCEPTIONS_TABLE = "otelhouse_exceptions"
MAX_GROUPS = 1000
Limit = limit_param(MAX_GROUPS, "exception groups")
SAMPLE_TRACES = 5

MASKS: tuple[tuple[str, str], ...] = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>"),
    (
        r"\b(?:0[xX][0-9a-fA-F]+"
        r"|[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*"
        r"|[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*)\b",
        "<hex>",
    ),
    (r"[0-9]+", "<n>"),
)


def normalised(message_sql: str) -> tuple[str, dict[str, str]]:
    """SQL masking the message expression ``message_sql``, patterns bound as parameters."""
    sql, parameters = message_sql, {}
    for i, (pattern, placeholder) in enumerate(MASKS):
        sql = f"replaceRegexpAll({sql}, {{mask_{i}:String}}, {{placeholder_{i}:String}})"
        parameters |= {f"mask_{i}": pattern, f"placeholder_{i}": placeholder}
    return sql, parameters


class ExceptionGroup(BaseModel):
    service: str
    type: str = Field(description="`exception.type`.")
    message: str = Field(description="`exception.message` with uuids, hex and numbers masked.")
    count: int = Field(description="Exception events in the group.")
    first_seen: datetime
    last_seen: datetime
    sample_stacktrace: str = Field(description="The latest non-empty `exception.stacktrace`.")
    sample_trace_ids: list[str] = Field(
        description=f"Up to {SAMPLE_TRACES} trace ids with this exception, sorted."
    )


class ExceptionsResponse(RangeResponse):
    exceptions: list[ExceptionGroup] = Field(description="Most frequent first.")


def exceptions_query(
    time_range: TimeRange, service: str | None, limit: int
) -> tuple[str, dict[str, Any]]:
    where = span_filter(time_range, service=service)
    message, mask_parameters = normalised("Message")
    sql = (
        f"SELECT ServiceName AS service, Type AS type, {message} AS message, count() AS count, "
        f"toUnixTimestamp64Nano(min(Timestamp)) AS first_seen_ns, "
        f"toUnixTimestamp64Nano(max(Timestamp)) AS last_seen_ns, "
        f"argMax(Stacktrace, (Stacktrace != '', Timestamp)) AS sample_stacktrace, "
        f"groupUniqArray({SAMPLE_TRACES})(TraceId) AS sample_trace_ids "
        f"FROM {EXCEPTIONS_TABLE} WHERE {where.sql} "
        f"GROUP BY service, type, message ORDER BY count DESC, service, type, message "
        f"LIMIT {{limit:UInt32}}"
    )
    return sql, where.bind(limit=limit, **mask_parameters)


@router.get(
    "/exceptions",
    summary="Exceptions grouped by service, type and normalised message",
    description=(
        "From span events named `exception`. Messages are normalised by masking UUIDs "
        "(`<uuid>`), hex words (`<hex>`) and numbers (`<n>`)."
    ),
)
def exceptions(
    client: ClientDep,
    time_range: TimeRangeDep,
    service: ServiceParam = None,
    limit: Limit = 100,
) -> ExceptionsResponse:
    rows = named_rows(client, exceptions_query(time_range, service, limit))
    return ExceptionsResponse.covering(
        time_range,
        exceptions=[
            ExceptionGroup(
                service=row["service"],
                type=row["type"],
                message=row["message"],
                count=row["count"],
                first_seen=datetime_from_ns(row["first_seen_ns"]),
                last_seen=datetime_from_ns(row["last_seen_ns"]),
                sample_stacktrace=row["sample_stacktrace"],
                sample_trace_ids=sorted(row["sample_trace_ids"]),
            )
            for row in rows
        ],
    )
