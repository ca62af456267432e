"""The service map: which services call which, with calls, errors and p95 per edge.

An **edge** caller → callee is one call, found two ways:

- **reported callee**: an entry span of the callee (``storage/semantics.py``: Server, Consumer
  or root) whose parent span belongs to another service, the caller. Found by joining entry
  spans that have a parent to the spans they name as parent (same trace, span id). Its
  errors and duration are the callee's entry span's: what the callee served.
- **unreported callee**: a Client or Producer span with a peer (``PeerService``:
  ``peer.service``, else ``server.address``) that no entry span names as its parent — a
  database, a third-party API, a service that sends no spans, or a call that never reached
  its callee. The callee is the peer's name; errors and duration are the client span's.

A call counts in the minute (and range) its callee's span (or the unanswered client span)
starts in; its caller's span is looked up from :data:`PARENT_LOOKBACK` earlier, and the
entry span answering a client span up to as much later.

**Where it is computed.** The join costs seconds at millions of spans (~10 s at 10M on two
cores), so closed minutes come from the rollup ``otelhouse_service_edges`` (migration 0008):
a refreshable materialized view runs the same join every minute over the minutes that ended
at least :data:`ROLLUP_LAG` ago and appends (minute, caller, callee, calls, errors, duration
sketch), plus a marker row per minute it covered. A query reads the rollup for the whole
minutes of its range that the rollup has covered and joins ``otel_traces`` for the rest (the
partial minutes at the edges of the range and the last minutes), bounded to those intervals,
and merges both: the numbers are the same as a join over the whole range (tests check it),
except for a call whose caller's span arrives more than the lag after its callee's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, Field

from otelhouse.query.filters import named_rows
from otelhouse.query.params import TimeRange
from otelhouse.storage.semantics import ERROR, PEER, REQUEST
from otelhouse.query.stats import RELATIVE_ACCURACY, error_rate
from otelhouse.query.units import NS_PER_MS, finite_or_none
from otelhouse.storage.tables import SERVICE_EDGES_TABLE, TRACES_TABLE

PARENT_LOOKBACK = timedelta(minutes=5)
ROLLUP_LAG = timedelta(minutes=5)
"""Kept equal to the lag and lookback written in storage/schema/0008_entry_spans.sql."""
_NS_PER_MIN = 60_000_000_000
P95_STATE = f"quantileDDState({RELATIVE_ACCURACY}, 0.95)"
P95_MERGE = f"quantileDDMerge({RELATIVE_ACCURACY}, 0.95)"


def _children(window: str, columns: str = "") -> str:
    """Entry spans with a parent in ``window``, keyed by their parent's (trace, span id)."""
    return (
        f"SELECT cityHash64(TraceId, ParentSpanId) AS key{columns} FROM {TRACES_TABLE} "
        f"WHERE ({window}) AND ({REQUEST}) AND ParentSpanId != ''"
    )


def calls_sql(callees: str, callers: str, answers: str) -> str:
    """SQL of one row per call: ``caller``, ``callee``, ``failed``, ``duration`` (ns).

    ``callees`` is the condition on ``Timestamp`` a call's callee span (or unanswered client
    span) meets; ``callers`` the one for caller spans (reaching back before it) and
    ``answers`` the one for the entry spans that answer a client span (reaching past it);
    all are code-built conditions (bound parameters, Grafana macros), never user text."""
    return f"""SELECT parent.ServiceName AS caller, child.ServiceName AS callee,
    child.failed AS failed, child.Duration AS duration
  FROM (
    SELECT cityHash64(TraceId, SpanId) AS key, ServiceName FROM {TRACES_TABLE}
    WHERE {callers}
  ) AS parent
  INNER JOIN ({_children(callees, f", ServiceName, ({ERROR}) AS failed, Duration")}) AS child
    ON child.key = parent.key
  WHERE parent.ServiceName != child.ServiceName
  UNION ALL
  SELECT call.ServiceName AS caller, call.peer AS callee, call.failed AS failed,
    call.Duration AS duration
  FROM (
    SELECT cityHash64(TraceId, SpanId) AS key, ServiceName, {PEER} AS peer,
      ({ERROR}) AS failed, Duration FROM {TRACES_TABLE}
    WHERE ({callees}) AND {PEER} != ''
  ) AS call
  LEFT ANTI JOIN ({_children(answers)}) AS child ON child.key = call.key"""


def edges_sql(start: str, end: str) -> str:
    """SQL of the edges over ``[start, end)`` (two DateTime64 expressions, code-built), one
    row per (caller, callee): ``calls``, ``errors``, ``p95_ms``; rollup and live join
    merged as the module docstring says."""
    lookback = f"INTERVAL {int(PARENT_LOOKBACK.total_seconds())} SECOND"
    rolled_from = f"toDateTime(intDiv(toUnixTimestamp64Nano({start}) + {_NS_PER_MIN - 1}, {_NS_PER_MIN}) * 60)"
    rolled_to = (
        f"greatest(rolled_from, least(toDateTime(intDiv(toUnixTimestamp64Nano({end}), {_NS_PER_MIN}) * 60), "
        f"(SELECT max(Timestamp) + 60 FROM {SERVICE_EDGES_TABLE})))"
    )
    live = (
        f"(Timestamp >= {start} AND Timestamp < rolled_from) "
        f"OR (Timestamp >= rolled_to AND Timestamp < {end})"
    )
    callers = (
        f"(Timestamp >= {start} - {lookback} AND Timestamp < rolled_from) "
        f"OR (Timestamp >= rolled_to - {lookback} AND Timestamp < {end})"
    )
    answers = (
        f"(Timestamp >= {start} AND Timestamp < rolled_from + {lookback}) "
        f"OR (Timestamp >= rolled_to AND Timestamp < {end} + {lookback})"
    )
    return f"""WITH {rolled_from} AS rolled_from, {rolled_to} AS rolled_to
SELECT caller, callee, sum(calls) AS calls, sum(errors) AS errors,
  {P95_MERGE}(sketch) / {NS_PER_MS} AS p95_ms
FROM (
  SELECT Caller AS caller, Callee AS callee, Calls AS calls, Errors AS errors, Duration AS sketch
  FROM {SERVICE_EDGES_TABLE}
  WHERE Timestamp >= rolled_from AND Timestamp < rolled_to AND Caller != ''
  UNION ALL
  SELECT caller, callee, count() AS calls, toUInt64(countIf(failed)) AS errors,
    {P95_STATE}(duration) AS sketch
  FROM (
  {calls_sql(live, callers, answers)}
  )
  GROUP BY caller, callee
)
GROUP BY caller, callee"""


class Edge(BaseModel):
    caller: str = Field(description="`service.name` of the calling span.")
    callee: str = Field(
        description="`service.name` of the called service's entry span, or the peer a "
        "client span names (`peer.service`, else `server.address`) when no span of the "
        "callee answers it."
    )
    calls: int = Field(description="Calls in the range.")
    errors: int = Field(
        description="Failed calls: the callee's entry span failed (StatusCode Error or HTTP "
        "status >= 500), or, without one, the client span did."
    )
    error_rate: float = Field(description="errors / calls.")
    p95_ms: float | None = Field(
        description="95th percentile duration of the callee's entry spans (of the client "
        "spans for unreported callees), ms within 1%."
    )


RANGE_START = "fromUnixTimestamp64Nano({start_ns:Int64})"
RANGE_END = "fromUnixTimestamp64Nano({end_ns:Int64})"


def service_map_query(time_range: TimeRange) -> tuple[str, dict[str, Any]]:
    sql = f"{edges_sql(RANGE_START, RANGE_END)}\nORDER BY caller, callee"
    return sql, time_range.bind()


def service_edges(client: Client, time_range: TimeRange) -> list[Edge]:
    """The edges over ``time_range``, ordered by caller and callee."""
    return [
        Edge(
            caller=row["caller"],
            callee=row["callee"],
            calls=row["calls"],
            errors=row["errors"],
            error_rate=error_rate(row["errors"], row["calls"]) or 0.0,
            p95_ms=finite_or_none(row["p95_ms"]),
        )
        for row in named_rows(client, service_map_query(time_range))
    ]
