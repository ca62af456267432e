"""``/api/v1/logs``: log search (keyset pages, newest first) and counts over time.

Semantics of severity, ``q`` and cursors: :mod:`otelhouse.query.logs`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from otelhouse.query.deps import ClientDep
from otelhouse.query.filters import (
    ServiceParam,
    Where,
    attr_param,
    invalid,
    limit_param,
    named_rows,
    parse_attributes,
    span_filter,
)
from otelhouse.query.log_json import LogOut, LogPageOut, LogStatsBucket, LogStatsOut, ServiceCount
from otelhouse.query.logs import (
    LEVEL_NAMES,
    LEVEL_SQL,
    LEVELS,
    MAX_LIMIT,
    Cursor,
    LogSearch,
    resumed_range,
    search_logs,
    severity_floor,
)
from otelhouse.query.params import TimeRangeDep
from otelhouse.query.steps import BUCKET_SQL, StepDep, bucket_starts
from otelhouse.query.trace_fetch import normalise_trace_id
from otelhouse.query.units import datetime_from_s
from otelhouse.storage.logs import LOGS_TABLE

router = APIRouter(prefix="/api/v1/logs", tags=["logs"])

LogServiceParam = Annotated[
    str | None, Query(description="Only records of this service (`service.name`, exact match).")
]
SEVERITY_NOTE = (
    "Levels are SeverityNumber ranges: TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, "
    "ERROR 17-20, FATAL 21-24; records with number 0 (unspecified) or outside 1-24 have none."
)
Q_NOTE = (
    "`q` is a case-insensitive substring of the body (ASCII letters folded, everything else "
    "exact): `q=refus` matches `Connection REFUSED`."
)


def parse_severity(severity: str | None) -> int | None:
    """The lowest SeverityNumber ``severity`` admits; 422 naming ``severity`` when unknown."""
    if severity is None:
        return None
    floor = severity_floor(severity)
    if floor is None:
        raise invalid("severity", f"expected one of {', '.join(LEVELS)} (any case)")
    return floor


def parse_cursor(cursor: str | None) -> Cursor | None:
    if cursor is None:
        return None
    parsed = Cursor.decode(cursor)
    if parsed is None:
        raise invalid("cursor", "not a cursor from this API: pass next_cursor unchanged")
    return parsed


@router.get(
    "",
    summary="Search log records",
    description=(
        "Log records in the time range, newest first, matching every filter given: `service`, "
        "`severity` (that level and above), `q`, `trace_id` and each `attr` (a log record "
        f"attribute). {Q_NOTE} {SEVERITY_NOTE} Pages: pass `next_cursor` back as `cursor` "
        "with the same parameters; a page after the first covers the first page's range, so "
        "records stored meanwhile with later timestamps neither repeat nor shift records; "
        "`next_cursor` is null on the last page."
    ),
)
def search(
    client: ClientDep,
    time_range: TimeRangeDep,
    service: LogServiceParam = None,
    severity: Annotated[
        str | None,
        Query(description="This level and above: TRACE, DEBUG, INFO, WARN, ERROR or FATAL."),
    ] = None,
    q: Annotated[
        str | None, Query(description="Case-insensitive substring of the body (ASCII folded).")
    ] = None,
    trace_id: Annotated[
        str | None, Query(description="Only records of this trace (32 hex digits).")
    ] = None,
    attr: attr_param("log record attribute", "every pair must hold") = [],  # noqa: B006
    limit: limit_param(MAX_LIMIT, "records") = 100,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page, unchanged.")
    ] = None,
) -> LogPageOut:
    normalised = None
    if trace_id is not None:
        normalised = normalise_trace_id(trace_id)
        if normalised is None:
            raise invalid("trace_id", "expected 32 hexadecimal characters")
    after = parse_cursor(cursor)
    time = time_range
    if after is not None:
        resumed = resumed_range(after, time_range.end)
        if resumed is None:
            raise invalid("cursor", "its search began too long ago (or after end): start over")
        time = resumed
    page = search_logs(
        client,
        LogSearch(
            time=time,
            service=service,
            min_severity=parse_severity(severity),
            q=q,
            trace_id=normalised,
            attributes=parse_attributes(attr),
        ),
        limit,
        after,
    )
    return LogPageOut.covering(
        time,
        logs=[LogOut.from_record(record) for record in page.records],
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
        limit=limit,
    )


def stats_queries(where: Where, step_s: int) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """Counts per (bucket, level index) and per service."""
    by_bucket = (
        f"SELECT {BUCKET_SQL} AS bucket, {LEVEL_SQL} AS level, count() AS count "
        f"FROM {LOGS_TABLE} WHERE {where.sql} GROUP BY bucket, level",
        where.bind(step_s=step_s),
    )
    by_service = (
        f"SELECT ServiceName AS service, count() AS count FROM {LOGS_TABLE} "
        f"WHERE {where.sql} GROUP BY service ORDER BY count DESC, service",
        where.bind(),
    )
    return by_bucket, by_service


@router.get(
    "/stats",
    summary="Log record counts",
    description=(
        "Records in the time range (of `service` when given): counted per level, per service, "
        f"and per level in each step bucket (every bucket listed, empty ones as zeros). "
        f"{SEVERITY_NOTE}"
    ),
)
def stats(
    client: ClientDep,
    time_range: TimeRangeDep,
    step_s: StepDep,
    service: LogServiceParam = None,
) -> LogStatsOut:
    by_bucket, by_service = stats_queries(span_filter(time_range, service=service), step_s)
    counts: dict[int, dict[str, int]] = {}
    for row in named_rows(client, by_bucket):
        levels = counts.setdefault(row["bucket"], dict.fromkeys(LEVEL_NAMES, 0))
        levels[LEVEL_NAMES[row["level"]]] = int(row["count"])
    buckets = []
    for start in bucket_starts(time_range, step_s):
        levels = counts.get(start, dict.fromkeys(LEVEL_NAMES, 0))
        buckets.append(
            LogStatsBucket(
                start=datetime_from_s(start), count=sum(levels.values()), by_severity=levels
            )
        )
    totals = {name: sum(b.by_severity[name] for b in buckets) for name in LEVEL_NAMES}
    return LogStatsOut.covering(
        time_range,
        step_s=step_s,
        count=sum(totals.values()),
        by_severity=totals,
        by_service=[
            ServiceCount(service=row["service"], count=int(row["count"]))
            for row in named_rows(client, by_service)
        ],
        buckets=buckets,
    )
