"""The service map: which services call which, with calls, errors and p95 per edge, computed
in ClickHouse from ``otel_traces`` at query time.

An **edge** caller → callee is one call, found two ways:

- **reported callee**: an entry span of the callee (``query/semantics.py``: Server, Consumer
  or root) whose parent span belongs to another service, the caller. Found by joining the
  range's entry spans that have a parent to the spans they name as parent (same trace, span
  id). Its errors and duration are the callee's entry span's: what the callee served.
- **unreported callee**: a Client or Producer span with a peer (``PeerService``:
  ``peer.service``, else ``server.address``) that no entry span names as its parent — a
  database, a third-party API, a service that sends no spans, or a call that never reached
  its callee. The callee is the peer's name; errors and duration are the client span's.

A call counts in the range its callee's span (or the unanswered client span) starts in. Its
caller's span starts earlier: callers are looked up from :data:`PARENT_LOOKBACK` before the
range, so a call made just before the range is still attributed.

Both sides are bounded by the range and joined on a 64-bit hash of (trace id, span id), so
the hash table holds one integer per entry span. bench/query.py measures it at 10M spans
(docs/architecture.md, "Decisions").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, Field

from otelhouse.query.filters import TIME_RANGE, named_rows
from otelhouse.query.params import TimeRange, epoch_ns
from otelhouse.query.semantics import ERROR, PEER, REQUEST
from otelhouse.query.stats import RELATIVE_ACCURACY, error_rate
from otelhouse.query.units import NS_PER_MS, finite_or_none
from otelhouse.storage.tables import TRACES_TABLE

PARENT_LOOKBACK = timedelta(minutes=5)


def edges_sql(in_range: str, callers_in_range: str) -> str:
    """SQL of the edges, one row per (caller, callee): ``calls``, ``errors``, ``p95_ms``.

    ``in_range`` is the condition on ``Timestamp`` a call's callee span must meet;
    ``callers_in_range`` the (wider) one for caller spans. Both are code-built conditions
    (bound parameters in the API, Grafana macros in the dashboards), never user text."""
    children = (
        f"SELECT cityHash64(TraceId, ParentSpanId) AS key, ServiceName, "
        f"({ERROR}) AS failed, Duration FROM {TRACES_TABLE} "
        f"WHERE ({in_range}) AND ({REQUEST}) AND ParentSpanId != ''"
    )
    return f"""SELECT caller, callee, count() AS calls, countIf(failed) AS errors,
  quantileDD({RELATIVE_ACCURACY}, 0.95)(duration) / {NS_PER_MS} AS p95_ms
FROM (
  SELECT parent.ServiceName AS caller, child.ServiceName AS callee,
    child.failed AS failed, child.Duration AS duration
  FROM (
    SELECT cityHash64(TraceId, SpanId) AS key, ServiceName FROM {TRACES_TABLE}
    WHERE {callers_in_range}
  ) AS parent
  INNER JOIN ({children}) AS child ON child.key = parent.key
  WHERE parent.ServiceName != child.ServiceName
  UNION ALL
  SELECT call.ServiceName AS caller, call.peer AS callee, call.failed AS failed,
    call.Duration AS duration
  FROM (
    SELECT cityHash64(TraceId, SpanId) AS key, ServiceName, {PEER} AS peer,
      ({ERROR}) AS failed, Duration FROM {TRACES_TABLE}
    WHERE ({in_range}) AND {PEER} != ''
  ) AS call
  LEFT ANTI JOIN ({children}) AS child ON child.key = call.key
)
GROUP BY caller, callee"""


CALLERS_IN_RANGE = (
    "Timestamp >= fromUnixTimestamp64Nano({callers_start_ns:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})"
)


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


def service_map_query(time_range: TimeRange) -> tuple[str, dict[str, Any]]:
    sql = f"{edges_sql(TIME_RANGE, CALLERS_IN_RANGE)}\nORDER BY caller, callee"
    callers_start = epoch_ns(time_range.start - PARENT_LOOKBACK)
    return sql, {**time_range.bind(), "callers_start_ns": callers_start}


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
