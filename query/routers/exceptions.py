"""``GET /api/v1/exceptions``: exceptions recorded as span events, grouped like an error
tracker groups them.

Source: span events named ``exception`` (the OTel convention ``span.record_exception``
follows), their ``exception.type``, ``exception.message`` and ``exception.stacktrace``
attributes. Groups are (service, type, normalised message); the normalised message is the
``otelhouse_exceptions`` column that the Grafana Exceptions dashboard groups by too
(``storage/semantics.py``; the masking rule is written once, in migration 0005). The events
are read from ``otelhouse_exceptions`` (migration 0004), one row per exception event filled on
insert by a materialized view: scanning them out of ``otel_traces`` read the whole event
columns, since exceptions are spread over every granule. The time range applies to the
event's own time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import RangeResponse, ServiceParam, limit_param, named_rows, span_filter
from otelhouse.query.params import TimeRange, TimeRangeDep
from otelhouse.storage.semantics import EXCEPTION_MESSAGE
from otelhouse.query.units import datetime_from_ns
from otelhouse.storage.tables import EXCEPTIONS_TABLE

router = APIRouter(prefix="/api/v1", tags=["exceptions"])

MAX_GROUPS = 1000
Limit = limit_param(MAX_GROUPS, "exception groups")
SAMPLE_TRACES = 5

class ExceptionGroup(BaseModel):
    service: str
    type: str = Field(description="`exception.type`.")
    message: str = Field(
        description="`exception.message` with quoted strings, uuids, hex and numbers masked."
    )
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
    sql = (
        f"SELECT ServiceName AS service, Type AS type, {EXCEPTION_MESSAGE} AS message, "
        "count() AS count, "
        f"toUnixTimestamp64Nano(min(Timestamp)) AS first_seen_ns, "
        f"toUnixTimestamp64Nano(max(Timestamp)) AS last_seen_ns, "
        f"argMax(Stacktrace, (Stacktrace != '', Timestamp)) AS sample_stacktrace, "
        f"groupUniqArray({SAMPLE_TRACES})(TraceId) AS sample_trace_ids "
        f"FROM {EXCEPTIONS_TABLE} WHERE {where.sql} "
        f"GROUP BY service, type, message ORDER BY count DESC, service, type, message "
        f"LIMIT {{limit:UInt32}}"
    )
    return sql, where.bind(limit=limit)


@router.get(
    "/exceptions",
    summary="Exceptions grouped by service, type and normalised message",
    description=(
        "From span events named `exception`. Messages are normalised by masking, in this "
        "order, quoted strings (`<str>`; a message that is one quoted string, as Python's "
        "KeyError, keeps its text), UUIDs (`<uuid>`), hex words (`<hex>`) and numbers (`<n>`)."
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
