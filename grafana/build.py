"""Source of the provisioned Grafana dashboards: ``python grafana/build.py`` writes
``grafana/dashboards/*.json``.

The dashboards are generated rather than hand-edited so that each SQL statement is readable,
the filters every panel shares are written once, and a test can check that the committed JSON
is what this file produces. The SQL is run by Grafana's ClickHouse plugin: template variables
are substituted by Grafana and the ``$__`` macros by the plugin (see tests/grafana/expand.py
for the exact rules), and tables are named without a database because the datasource's
``defaultDatabase`` selects it.

Definitions (storage/semantics.py, shared with the query API): a *request* is a service's
entry span, of kind Server or Consumer or a root span (``IsRequest``, migration 0008); an *error* is StatusCode Error or an HTTP status >= 500
(``IsError``); exceptions are grouped by type and ``NormalizedMessage`` (migration 0005), as
``/api/v1/exceptions`` groups them. These, and ``HttpStatusCode``, are MATERIALIZED columns
added by otelhouse's schema migrations. Table names come from ``otelhouse.storage.tables``.

Tables: ``otel_traces`` for everything about spans; the Exceptions dashboard reads
``otelhouse_exceptions`` (migration 0004, one row per exception event, filled on insert by a
materialized view), where the time is the exception event's own, and looks in ``otel_traces``
only for the operation names of the sample occurrences it lists. The Logs dashboard reads
``otel_logs``; its severity levels are those of the logs API (``otelhouse.query.logs``:
SeverityNumber ranges, ``LEVEL_SQL``) and its text search is the API's ``q``, a
case-insensitive substring of the Body with ASCII letters folded.

Variables: ``$service`` and ``$operation`` hold values from the tables and are bound with
``singlequote`` as everywhere here. The Logs dashboard's free-text variables are bound with
``percentencode`` inside ``decodeURLComponent('...')`` (:func:`text_value`): Grafana's
``sqlstring`` doubles quotes but leaves backslashes, which ClickHouse reads as escapes, so a
typed ``\'`` would end the literal; a percent-encoded value is letters, digits, ``-_.~`` and
``%`` only.

The Metrics dashboard reads the five ``otel_metrics_*`` tables and counts as the metrics API
does (``otelhouse.query.metrics``): its rates, increments across counter resets and restarts
and histogram percentiles are that module's SQL (:func:`increments_sql`,
:func:`percentiles_sql`, :func:`rate_sql`) with the steps given by the panel interval, and an
HTTP error is ``storage.semantics.HTTP_METRIC_ERROR``. Its ``$metric`` (``<type>:<name>``) and
``$group_by`` (an attribute key) come from the tables but may hold any character, so they are
bound like the free-text variables.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from otelhouse.query.logs import LEVEL_NAMES, LEVEL_SQL, LEVELS, MAX_SEVERITY_NUMBER, severity_floor
from otelhouse.query.metrics import (
    RECORDED_VALUE,
    Steps,
    increments_sql,
    percentiles_sql,
    rate_sql,
    recorded,
)
from otelhouse.storage.semantics import (
    ERROR,
    EXCEPTION_MESSAGE,
    HTTP_METRIC_ERROR,
    HTTP_SERVER_DURATION,
    REQUEST,
)
from otelhouse.query.service_map import edges_sql
from otelhouse.storage.metrics import GAUGE, HISTOGRAM, METRIC_TABLES, SUM, MetricTable
from otelhouse.storage.tables import EXCEPTIONS_TABLE, LOGS_TABLE, TRACE_ID_TS_TABLE, TRACES_TABLE

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"

CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "otelhouse-clickhouse"}
JAEGER = {"type": "jaeger", "uid": "otelhouse-jaeger"}

OVERVIEW_UID = "otelhouse-overview"
ENDPOINT_UID = "otelhouse-endpoint"
EXCEPTIONS_UID = "otelhouse-exceptions"
TRACES_UID = "otelhouse-traces"
LOGS_UID = "otelhouse-logs"
METRICS_UID = "otelhouse-metrics"

SAMPLE_OCCURRENCES = 50
LOG_LINES = 1000
TOP_LOG_SERVICES = 20

TIME_SERIES, TABLE, LOGS, TRACE = 0, 1, 2, 3
_QUERY_TYPE = {TIME_SERIES: "timeseries", TABLE: "table", LOGS: "logs", TRACE: "traces"}

PERCENTILES = (50, 90, 95, 99)
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

IN_RANGE = "$__timeFilter(Timestamp)"
SERVICES = "$__conditionalAll(ServiceName IN (${service:singlequote}), $service)"
OPERATIONS = "$__conditionalAll(SpanName IN (${operation:singlequote}), $operation)"
ONE_SERVICE = "ServiceName = ${service:singlequote}"


def _trace_url(trace: str) -> str:
    return f"/d/{TRACES_UID}/traces?var-trace_id={trace}&${{__url_time_range}}"


def _jaeger_explore_url(trace: str) -> str:
    """An Explore link opening the trace through the Jaeger datasource; only the JSON around
    the placeholder is URL-encoded so that Grafana still interpolates it."""
    marker = "TRACE_ID_MARKER"
    panes = {
        "trace": {
            "datasource": JAEGER["uid"],
            "queries": [{"refId": "A", "datasource": JAEGER, "query": marker}],
            "range": {"from": "now-1h", "to": "now"},
        }
    }
    encoded = quote(json.dumps(panes, separators=(",", ":")), safe="")
    return "/explore?schemaVersion=1&panes=" + encoded.replace(marker, trace)


def logs_link(trace: str = "${__value.raw}") -> dict[str, str]:
    """The Logs dashboard showing only the records of ``trace``, in the same time range."""
    return {"title": "Logs of this trace",
            "url": f"/d/{LOGS_UID}/logs?var-trace_id={trace}&${{__url_time_range}}"}


def trace_links(trace: str = "${__value.raw}", *, logs: bool = True) -> list[dict[str, str]]:
    """Open the trace (Traces dashboard, Explore) and, with ``logs``, its log records."""
    links = [
        {"title": "Open trace", "url": _trace_url(trace)},
        {"title": "Open trace in Explore (Jaeger API)", "url": _jaeger_explore_url(trace)},
    ]
    return [*links, logs_link(trace)] if logs else links


def text_value(variable: str) -> str:
    """An SQL string expression equal to the variable's text, whatever characters it holds
    (see the module docstring)."""
    return f"decodeURLComponent('${{{variable}:percentencode}}')"


def _percentile_columns(duration: str = "Duration") -> str:
    """p50..p99 in milliseconds. ``quantiles`` samples (reservoir of 8192 per group): exact
    below that, and bounded in memory on busy services."""
    levels = ", ".join(f"{p / 100:g}" for p in PERCENTILES)
    picks = ", ".join(f"q[{i}] AS p{p}" for i, p in enumerate(PERCENTILES, start=1))
    return f"arrayMap(x -> x / 1e6, quantiles({levels})({duration})) AS q, {picks}"


def _where(*conditions: str) -> str:
    return "WHERE " + "\n  AND ".join(conditions)


# ---------------------------------------------------------------------------- panels


@dataclass
class Panel:
    title: str
    kind: str
    sql: str
    fmt: int
    width: int
    height: int
    description: str = ""
    unit: str | None = None
    links: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        overrides = [
            {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "links", "value": links}]}
            for name, links in self.links.items()
        ]
        overrides += [
            {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
            for name, unit in self.units.items()
        ]
        overrides += [
            {
                "matcher": {"id": "byName", "options": name},
                "properties": [{"id": "custom.hidden", "value": True}],
            }
            for name in self.hidden
        ]
        defaults: dict[str, Any] = {"custom": dict(self.custom)}
        if self.unit:
            defaults["unit"] = self.unit
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": CLICKHOUSE,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": self.height},
            "fieldConfig": {"defaults": defaults, "overrides": overrides},
            "options": self.options,
            "targets": [
                {
                    "refId": "A",
                    "datasource": CLICKHOUSE,
                    "editorType": "sql",
                    "format": self.fmt,
                    "queryType": _QUERY_TYPE[self.fmt],
                    "rawSql": self.sql.strip(),
                }
            ],
        }


def timeseries(title: str, sql: str, *, unit: str, description: str, width: int = 12) -> Panel:
    return Panel(
        title, "timeseries", sql, TIME_SERIES, width, 8, description, unit,
        custom={"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"},
        options={"legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"]},
                 "tooltip": {"mode": "multi", "sort": "desc"}},
    )


def table(title: str, sql: str, *, description: str, width: int = 24, height: int = 9,
          wrap: bool = False, **extra: Any) -> Panel:
    cells = {"type": "auto", "wrapText": True} if wrap else {"type": "auto"}
    return Panel(title, "table", sql, TABLE, width, height, description,
                 custom={"cellOptions": cells, "inspect": True}, **extra)


# ------------------------------------------------------------------------- variables


def query_variable(name: str, label: str, sql: str, *, multi: bool, include_all: bool) -> dict[str, Any]:
    current = {"text": "All", "value": "$__all"} if include_all else {}
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": CLICKHOUSE,
        "query": sql,
        "definition": sql,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": include_all,
        "current": current,
        "options": [],
        "hide": 0,
    }


def textbox(name: str, label: str, description: str) -> dict[str, Any]:
    return {
        "type": "textbox",
        "name": name,
        "label": label,
        "description": description,
        "query": "",
        "current": {"text": "", "value": ""},
        "hide": 0,
    }


def custom_variable(name: str, label: str, values: tuple[str, ...]) -> dict[str, Any]:
    options = [{"text": v, "value": v, "selected": i == 0} for i, v in enumerate(values)]
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "query": ",".join(values),
        "options": options,
        "current": {"text": values[0], "value": values[0]},
        "multi": False,
        "includeAll": False,
        "hide": 0,
    }


def services_variable(*, multi: bool, table: str = TRACES_TABLE, include_all: bool | None = None) -> dict[str, Any]:
    """The services with rows of ``table`` in the time range; "All" is offered with ``multi``
    unless ``include_all`` says otherwise."""
    sql = f"SELECT DISTINCT ServiceName FROM {table} WHERE {IN_RANGE} ORDER BY ServiceName"
    all_ = multi if include_all is None else include_all
    return query_variable("service", "Service", sql, multi=multi, include_all=all_)


def operations_variable(service_filter: str) -> dict[str, Any]:
    sql = (
        f"SELECT DISTINCT SpanName FROM {TRACES_TABLE} WHERE {IN_RANGE} AND {REQUEST} "
        f"AND {service_filter} ORDER BY SpanName"
    )
    return query_variable("operation", "Operation", sql, multi=True, include_all=True)


# ------------------------------------------------------------------------ dashboards


def dashboard(uid: str, title: str, description: str, variables: list[dict[str, Any]],
              panels: list[Panel]) -> dict[str, Any]:
    laid_out, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(panel.to_json(panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["otelhouse"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "graphTooltip": 1,
        "links": [
            {"title": "otelhouse", "type": "dashboards", "tags": ["otelhouse"], "asDropdown": True,
             "includeVars": False, "keepTime": True}
        ],
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": laid_out,
    }


def service_overview() -> dict[str, Any]:
    requests = _where(IN_RANGE, REQUEST, SERVICES)
    to_endpoint = (
        f"/d/{ENDPOINT_UID}/endpoint-detail?var-service=${{__data.fields.service}}"
        "&var-operation=${__value.raw}&${__url_time_range}"
    )
    service_link = (
        f"/d/{ENDPOINT_UID}/endpoint-detail?var-service=${{__value.raw}}"
        "&var-operation=$__all&${__url_time_range}"
    )
    endpoint_stats = (
        f"count() AS requests,\n  countIf({ERROR}) / count() AS error_rate,\n"
        f"  {_percentile_columns()}"
    )
    return dashboard(
        OVERVIEW_UID,
        "otelhouse / Service overview",
        "Rate, errors and duration (RED) of every service's requests.",
        [services_variable(multi=True)],
        [
            timeseries(
                "Request rate",
                f"""
SELECT $__timeInterval(Timestamp) AS time, ServiceName, count() / $__interval_s AS requests_per_s
FROM {TRACES_TABLE}
{requests}
GROUP BY ServiceName, time
ORDER BY time""",
                unit="reqps",
                description="Requests per second (entry spans: kind Server or Consumer, or root spans) per service.",
            ),
            timeseries(
                "Error rate",
                f"""
SELECT $__timeInterval(Timestamp) AS time, ServiceName, countIf({ERROR}) / count() AS error_rate
FROM {TRACES_TABLE}
{requests}
GROUP BY ServiceName, time
ORDER BY time""",
                unit="percentunit",
                description="Share of requests that failed: status Error or HTTP status >= 500.",
            ),
            timeseries(
                "Latency percentiles",
                f"""
SELECT time, ServiceName, {", ".join(f"p{p}" for p in PERCENTILES)}
FROM (
  SELECT $__timeInterval(Timestamp) AS time, ServiceName, {_percentile_columns()}
  FROM {TRACES_TABLE}
  {requests}
  GROUP BY ServiceName, time
)
ORDER BY time""",
                unit="ms",
                description="p50, p90, p95 and p99 request duration per service.",
                width=24,
            ),
            table(
                "Services",
                f"""
SELECT ServiceName AS service,
  {ACTIVE_RATE} AS requests_per_s,
  {endpoint_stats}
FROM {TRACES_TABLE}
{requests}
GROUP BY service
ORDER BY requests DESC""",
                description=(
                    "Requests (entry spans: kind Server or Consumer, or root spans) per "
                    "service; errors and percentiles over those requests only. Requests per "
                    "second from the service's first to its last request in the range (at "
                    "least 1 s). Click a service to open its endpoints in Endpoint detail."
                ),
                links={"service": [{"title": "Endpoint detail", "url": service_link}]},
                hidden=("q",),
                units={"requests_per_s": "reqps", "error_rate": "percentunit",
                       **{f"p{p}": "ms" for p in PERCENTILES}},
            ),
            table(
                "Top endpoints",
                f"""
SELECT ServiceName AS service, SpanName AS operation,
  {endpoint_stats}
FROM {TRACES_TABLE}
{requests}
GROUP BY service, operation
ORDER BY requests DESC
LIMIT 20""",
                description="The busiest operations. Click one to open it in Endpoint detail.",
                links={"operation": [{"title": "Endpoint detail", "url": to_endpoint}]},
                hidden=("q",),
                units={"error_rate": "percentunit", **{f"p{p}": "ms" for p in PERCENTILES}},
            ),
            service_map_panel(),
        ],
    )


# ------------------------------------------------------------------------ service map

ACTIVE_RATE = (
    "count() / greatest((toUnixTimestamp64Nano(max(Timestamp)) - "
    "toUnixTimestamp64Nano(min(Timestamp))) / 1e9, 1)"
)
"""Requests per second from the first to the last request in the range (at least 1 s), as
``rate_per_s`` of the query API (query/stats.py)."""

MAP_SERVICES = (
    "$__conditionalAll(caller IN (${service:singlequote}) "
    "OR callee IN (${service:singlequote}), $service)"
)


@dataclass
class MultiQueryPanel(Panel):
    """A panel fed by several queries, one target each, named by ``refId``."""

    queries: dict[str, str] = field(default_factory=dict)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        data = super().to_json(panel_id, x, y)
        (template,) = data["targets"]
        data["targets"] = [
            {**template, "refId": ref, "rawSql": sql.strip()} for ref, sql in self.queries.items()
        ]
        return data


MAP_START = "toDateTime64($__fromTime, 9)"
MAP_END = "addNanoseconds(toDateTime64($__toTime, 9), 1)"
"""The dashboard's range as ``$__timeFilter`` reads it (both ends included), for
:func:`otelhouse.query.service_map.edges_sql`, which takes ``[start, end)``."""


def _map_edges() -> str:
    """The service map's edges over the dashboard's range, the query API's SQL
    (``otelhouse.query.service_map``: rollup for covered minutes, live join for the rest),
    restricted to edges touching the selected services."""
    return f"SELECT * FROM (\n{edges_sql(MAP_START, MAP_END)}\n)\nWHERE {MAP_SERVICES}"


def service_map_panel() -> Panel:
    """A node graph: nodes (services and unreported peers, with their requests and error
    rate) and edges (calls, p95, errors) as the node graph panel reads two frames: one with
    ``id``/``title``/``mainstat``/``secondarystat``, one with ``id``/``source``/``target``."""
    edges = f"""
SELECT concat(caller, ' -> ', callee) AS id, caller AS source, callee AS target,
  calls AS mainstat, p95_ms AS secondarystat, errors AS detail__errors,
  errors / calls AS detail__error_rate
FROM (
{_map_edges()}
)
ORDER BY source, target"""
    nodes = f"""
SELECT node AS id, node AS title, served.requests AS mainstat, served.error_rate AS secondarystat
FROM (
  SELECT DISTINCT arrayJoin([caller, callee]) AS node
  FROM (
{_map_edges()}
  )
) AS nodes
LEFT JOIN (
  SELECT ServiceName, count() AS requests, countIf({ERROR}) / count() AS error_rate
  FROM {TRACES_TABLE}
  {_where(IN_RANGE, REQUEST)}
  GROUP BY ServiceName
) AS served ON served.ServiceName = nodes.node
ORDER BY id"""
    return MultiQueryPanel(
        "Service map",
        "nodeGraph",
        nodes,
        TABLE,
        24,
        12,
        "Which services call which in the range: an edge is a call from a span of one "
        "service to another service's entry span, or a client call to a peer that sends no "
        "spans (a database, an external API). Edges: calls and p95 ms of the callee's side; "
        "nodes: requests and error rate (0 for peers that send no spans).",
        queries={"nodes": nodes, "edges": edges},
        options={"nodes": {"mainStatUnit": "short", "secondaryStatUnit": "percentunit"},
                 "edges": {"mainStatUnit": "short", "secondaryStatUnit": "ms"}},
    )


def endpoint_detail() -> dict[str, Any]:
    requests = _where(IN_RANGE, REQUEST, ONE_SERVICE, OPERATIONS)
    bounds = "[" + ", ".join(str(b) for b in LATENCY_BUCKETS_MS) + "]"
    return dashboard(
        ENDPOINT_UID,
        "otelhouse / Endpoint detail",
        "Latency, status codes and the slowest requests of one service's operations.",
        [services_variable(multi=False), operations_variable(ONE_SERVICE)],
        [
            timeseries(
                "Latency percentiles",
                f"""
SELECT time, {", ".join(f"p{p}" for p in PERCENTILES)}
FROM (
  SELECT $__timeInterval(Timestamp) AS time, {_percentile_columns()}
  FROM {TRACES_TABLE}
  {requests}
  GROUP BY time
)
ORDER BY time""",
                unit="ms",
                description="p50, p90, p95 and p99 duration of the selected operations.",
                width=24,
            ),
            Panel(
                "Latency distribution",
                "barchart",
                f"""
WITH {bounds} AS bounds_ms
SELECT if(slot = 0, concat('> ', toString(bounds_ms[-1]), ' ms'),
          concat('<= ', toString(bounds_ms[slot]), ' ms')) AS duration, requests
FROM (
  SELECT arrayFirstIndex(b -> Duration <= b * 1000000, bounds_ms) AS slot, count() AS requests
  FROM {TRACES_TABLE}
  {requests}
  GROUP BY slot
)
ORDER BY slot = 0, slot""",
                TABLE,
                12,
                9,
                "How many requests fell in each duration bucket.",
                options={"xField": "duration", "showValue": "auto", "legend": {"showLegend": False}},
            ),
            Panel(
                "Status codes",
                "piechart",
                f"""
SELECT if(HttpStatusCode = 0, concat('no HTTP status, ', StatusCode), toString(HttpStatusCode)) AS status,
  count() AS requests
FROM {TRACES_TABLE}
{requests}
GROUP BY status
ORDER BY requests DESC""",
                TABLE,
                12,
                9,
                "Requests by HTTP status code (or span status when there is none).",
                options={
                    "reduceOptions": {"values": True, "calcs": [], "fields": "/^requests$/"},
                    "displayLabels": ["name", "percent"],
                    "legend": {"displayMode": "table", "placement": "right", "values": ["value"]},
                },
            ),
            table(
                "Slowest requests",
                f"""
SELECT Timestamp AS time, TraceId AS trace_id, SpanName AS operation,
  Duration / 1e6 AS duration_ms, HttpStatusCode AS http_status, StatusCode AS span_status
FROM {TRACES_TABLE}
{requests}
ORDER BY Duration DESC
LIMIT 20""",
                description="The 20 slowest requests; click a trace id to open the trace.",
                links={"trace_id": trace_links()},
                units={"duration_ms": "ms"},
            ),
        ],
    )


def _exceptions() -> str:
    """One row per exception event recorded on a span (OTel semantic conventions), read from
    ``otelhouse_exceptions`` (migration 0004: a materialized view copies each ``exception``
    event of ``otel_traces`` on insert), so the panels do not read every span's event
    columns. Its ``Timestamp`` is the event's own time: the time range and the times shown
    are those of the exception, and its groups are those of the normalised message column,
    as in ``/api/v1/exceptions``."""
    return f"""(
    SELECT Timestamp, TraceId, SpanId, ServiceName,
      Type AS type, Message AS message, Stacktrace AS stacktrace,
      {EXCEPTION_MESSAGE} AS normalized,
      lower(hex(cityHash64(type, normalized))) AS group_id
    FROM {EXCEPTIONS_TABLE}
    {_where(IN_RANGE, SERVICES)}
  )"""


def _sample_occurrences(selected: str) -> str:
    """The latest occurrences of the picked group, with the operation (``SpanName``) of the
    span that recorded each: the exceptions table does not hold it, so it is looked up in
    ``otel_traces`` for those few spans only. A span may have started before the time range
    (its exception is what falls in it), so the lookup is bounded by the extent of the
    spans' traces in the trace-id table, as in the Traces dashboard's trace panel. ANY: a
    span stored twice still gives one row per occurrence."""
    in_latest = "TraceId IN (SELECT TraceId FROM latest)"
    return f"""
WITH latest AS (
    SELECT Timestamp, ServiceName, TraceId, SpanId, message
    FROM {_exceptions()}
    {selected}
    ORDER BY Timestamp DESC, TraceId, SpanId
    LIMIT {SAMPLE_OCCURRENCES}
  ),
  (SELECT (min(Start), max(End) + 1) FROM {TRACE_ID_TS_TABLE} WHERE {in_latest}) AS extent
SELECT latest.Timestamp AS time, latest.ServiceName AS service, span.SpanName AS operation,
  latest.TraceId AS trace_id, latest.message AS message
FROM latest
LEFT ANY JOIN (
  SELECT TraceId, SpanId, SpanName
  FROM {TRACES_TABLE}
  {_where(in_latest, "Timestamp >= extent.1", "Timestamp <= extent.2")}
) AS span ON span.TraceId = latest.TraceId AND span.SpanId = latest.SpanId
ORDER BY time DESC, trace_id"""


def exceptions() -> dict[str, Any]:
    pick_group = (
        f"/d/{EXCEPTIONS_UID}/exceptions?var-group=${{__data.fields.group_id}}"
        "&${service:queryparam}&${__url_time_range}"
    )
    selected = "WHERE group_id = ${group:sqlstring}"
    return dashboard(
        EXCEPTIONS_UID,
        "otelhouse / Exceptions",
        f"Exceptions recorded on spans (the {EXCEPTIONS_TABLE} table), grouped by type and "
        "normalised message, at the time they were raised.",
        [
            services_variable(multi=True),
            textbox("group", "Exception group", "Set by clicking a message in the groups table."),
        ],
        [
            table(
                "Exception groups",
                f"""
SELECT group_id, type, normalized AS message, count() AS occurrences, uniqExact(TraceId) AS traces,
  min(Timestamp) AS first_seen, max(Timestamp) AS last_seen,
  arrayStringConcat(arraySort(groupUniqArray(ServiceName)), ', ') AS services,
  argMax(TraceId, Timestamp) AS sample_trace
FROM {_exceptions()}
GROUP BY group_id, type, normalized
ORDER BY occurrences DESC
LIMIT 100""",
                description=(
                    "Messages with ids and numbers replaced by placeholders. First/last seen: "
                    "when raised, within the time range. Click a message to see its stack trace below."
                ),
                links={"message": [{"title": "Show stack trace and samples", "url": pick_group}],
                       "sample_trace": trace_links()},
                hidden=("group_id",),
            ),
            timeseries(
                "Exceptions over time",
                f"""
SELECT $__timeInterval(Timestamp) AS time, type, count() AS exceptions
FROM {_exceptions()}
GROUP BY type, time
ORDER BY time""",
                unit="short",
                description="Exception events per interval (by the time raised), by exception type.",
                width=24,
            ),
            table(
                "Stack trace of the selected group",
                f"""
SELECT type, message, stacktrace, Timestamp AS seen, TraceId AS trace_id
FROM {_exceptions()}
{selected}
ORDER BY Timestamp DESC
LIMIT 1""",
                description="The latest occurrence of the group picked in the table above.",
                height=12,
                links={"trace_id": trace_links()},
                wrap=True,
            ),
            table(
                "Sample traces of the selected group",
                _sample_occurrences(selected),
                description="Recent occurrences of the picked group; click a trace id to open it.",
                links={"trace_id": trace_links()},
            ),
        ],
    )


def traces() -> dict[str, Any]:
    search = _where(
        IN_RANGE,
        REQUEST,
        SERVICES,
        OPERATIONS,
        "Duration >= toFloat64OrZero(${min_ms:sqlstring}) * 1000000",
        "(${max_ms:sqlstring} = '' OR Duration <= toFloat64OrZero(${max_ms:sqlstring}) * 1000000)",
        f"(${{status:sqlstring}} = 'any' OR ({ERROR}) = (${{status:sqlstring}} = 'error'))",
    )
    attributes = "arrayMap(key -> map('key', key, 'value', {0}[key]), mapKeys({0}))"
    return dashboard(
        TRACES_UID,
        "otelhouse / Traces",
        "Find requests by service, operation, duration and status, and open their traces.",
        [
            services_variable(multi=True),
            operations_variable(SERVICES),
            textbox("min_ms", "Min duration (ms)", "Only requests at least this slow; empty for any."),
            textbox("max_ms", "Max duration (ms)", "Only requests at most this slow; empty for any."),
            custom_variable("status", "Status", ("any", "error", "ok")),
            textbox("trace_id", "Trace id", "Set by clicking a trace id; or paste one."),
        ],
        [
            table(
                "Requests",
                f"""
SELECT Timestamp AS time, TraceId AS trace_id, ServiceName AS service, SpanName AS operation,
  Duration / 1e6 AS duration_ms, HttpStatusCode AS http_status,
  if({ERROR}, 'error', 'ok') AS status
FROM {TRACES_TABLE}
{search}
ORDER BY Timestamp DESC
LIMIT 200""",
                description="Latest 200 requests matching the filters; click a trace id to open it below.",
                height=10,
                links={"trace_id": [{"title": "Show trace below",
                                     "url": f"/d/{TRACES_UID}/traces?var-trace_id=${{__value.raw}}"
                                            "&${service:queryparam}&${operation:queryparam}"
                                            "&${min_ms:queryparam}&${max_ms:queryparam}"
                                            "&${status:queryparam}&${__url_time_range}"},
                                    trace_links()[1], logs_link()]},
                units={"duration_ms": "ms"},
            ),
            Panel(
                "Trace",
                "traces",
                f"""
WITH ${{trace_id:sqlstring}} AS trace,
  (SELECT min(Start) FROM {TRACE_ID_TS_TABLE} WHERE TraceId = trace) AS trace_start,
  (SELECT max(End) + 1 FROM {TRACE_ID_TS_TABLE} WHERE TraceId = trace) AS trace_end
SELECT TraceId AS traceID, SpanId AS spanID, ParentSpanId AS parentSpanID,
  ServiceName AS serviceName, SpanName AS operationName,
  toUnixTimestamp64Nano(Timestamp) / 1e6 AS startTime, Duration / 1e6 AS duration,
  lower(SpanKind) AS kind, multiIf(StatusCode = 'Error', 2, StatusCode = 'Ok', 1, 0) AS statusCode,
  StatusMessage AS statusMessage,
  {attributes.format("SpanAttributes")} AS tags,
  {attributes.format("ResourceAttributes")} AS serviceTags
FROM {TRACES_TABLE}
WHERE TraceId = trace AND Timestamp >= trace_start AND Timestamp <= trace_end
ORDER BY Timestamp
LIMIT 10000""",
                TRACE,
                24,
                16,
                "The spans of the trace in the trace_id variable (bounded by the trace-id "
                "lookup table, so it does not scan the time range).",
            ),
        ],
    )


def _sql_array(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


LEVEL_NAME = f"{_sql_array(LEVEL_NAMES)}[{LEVEL_SQL} + 1]"
"""A record's level name (``UNSPECIFIED`` when its SeverityNumber is no level), as the logs API
names it."""
IS_ERROR_LOG = f"SeverityNumber BETWEEN {severity_floor('ERROR')} AND {MAX_SEVERITY_NUMBER}"
"""ERROR or FATAL."""
ANY_SEVERITY = "any"


def _log_filters(*, severity: bool = True) -> str:
    """The Logs dashboard's selection: time range, service, the body containing ``$search``
    (case-insensitive, ASCII letters folded; empty matches all), ``$trace_id`` when set (any
    case), and with ``severity`` a level of at least ``$severity``. ``indexOf`` gives a level
    its index in ``LEVEL_NAMES`` and ``any`` 0, so ``any`` also admits records without a level
    and any level excludes them, as ``severity=`` does in the API."""
    conditions = [
        IN_RANGE,
        SERVICES,
        f"positionCaseInsensitive(Body, {text_value('search')}) > 0",
        f"({text_value('trace_id')} = '' OR TraceId = lower({text_value('trace_id')}))",
    ]
    if severity:
        conditions.append(f"{LEVEL_SQL} >= indexOf({_sql_array(LEVELS)}, {text_value('severity')})")
    return _where(*conditions)


def logs() -> dict[str, Any]:
    selected = _log_filters()
    same_filters = "&${severity:queryparam}&${search:queryparam}&${trace_id:queryparam}&${__url_time_range}"
    return dashboard(
        LOGS_UID,
        "otelhouse / Logs",
        f"Log records ({LOGS_TABLE}) by service, minimum severity, text and trace.",
        [
            services_variable(multi=False, table=LOGS_TABLE, include_all=True),
            custom_variable("severity", "Minimum severity", (ANY_SEVERITY, *LEVELS)),
            textbox("search", "Search", "Case-insensitive text the log body contains; empty for any."),
            textbox("trace_id", "Trace id", "Only the records of this trace; empty for any."),
        ],
        [
            Panel(
                "Log volume by severity",
                "timeseries",
                f"""
SELECT $__timeInterval(Timestamp) AS time, {LEVEL_NAME} AS severity, count() AS records
FROM {LOGS_TABLE}
{selected}
GROUP BY severity, time
ORDER BY time""",
                TIME_SERIES,
                12,
                8,
                "Records per interval, stacked by level (UNSPECIFIED: SeverityNumber 0 or above 24).",
                "short",
                custom={"drawStyle": "bars", "fillOpacity": 80, "lineWidth": 1, "showPoints": "never",
                        "stacking": {"mode": "normal", "group": "A"}},
                options={"legend": {"displayMode": "list", "placement": "bottom"},
                         "tooltip": {"mode": "multi", "sort": "desc"}},
            ),
            timeseries(
                "Error log rate",
                f"""
SELECT $__timeInterval(Timestamp) AS time, ServiceName, count() / $__interval_s AS errors_per_s
FROM {LOGS_TABLE}
{_log_filters(severity=False)}
  AND {IS_ERROR_LOG}
GROUP BY ServiceName, time
ORDER BY time""",
                unit="cps",
                description="ERROR and FATAL records per second per service (the severity variable does not apply).",
            ),
            Panel(
                "Log records",
                "logs",
                f"""
SELECT Timestamp AS timestamp, Body AS body, {LEVEL_NAME} AS level, ServiceName AS service,
  SeverityText AS severity_text, TraceId AS trace_id, SpanId AS span_id
FROM {LOGS_TABLE}
{selected}
ORDER BY Timestamp DESC
LIMIT {LOG_LINES}""",
                LOGS,
                24,
                16,
                f"The latest {LOG_LINES} records matching the filters, newest first; a record's "
                "trace id links to its trace.",
                links={"trace_id": trace_links(logs=False)},
                options={"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending",
                         "enableLogDetails": True, "dedupStrategy": "none", "showLabels": False,
                         "showCommonLabels": False, "prettifyLogMessage": False},
            ),
            table(
                "Top services",
                f"""
SELECT ServiceName AS service, count() AS records, countIf({IS_ERROR_LOG}) AS errors
FROM {LOGS_TABLE}
{selected}
GROUP BY service
ORDER BY records DESC, service
LIMIT {TOP_LOG_SERVICES}""",
                description="Services with the most records matching the filters; click one to show only its logs.",
                height=8,
                links={"service": [{"title": "Logs of this service",
                                    "url": f"/d/{LOGS_UID}/logs?var-service=${{__value.raw}}{same_filters}"}]},
            ),
        ],
    )


METRIC_KINDS: tuple[MetricTable, ...] = (GAUGE, SUM, HISTOGRAM)
"""The metric types the Metrics dashboard draws (``$metric`` lists these)."""
RUNTIME_PREFIXES = ("process.", "jvm.", "go.", "dotnet.", "v8js.", "nodejs.", "cpython.")
"""Metric name prefixes of process and language-runtime metrics (semantic conventions, and the
older ``process.runtime.*``)."""
HTTP_QUANTILES = {"p50": "0.5", "p90": "0.9", "p99": "0.99"}
METRIC_QUANTILE = "0.95"

METRIC_IN_RANGE = "$__timeFilter(TimeUnix)"
LOOKBACK_START = "$__fromTime - $__interval_s"
METRIC_STEPS = Steps("$__timeInterval(TimeUnix)", LOOKBACK_START, "$__fromTime")
"""Steps of the panel interval; a counter's first step reads one interval back."""
WITH_LOOKBACK = f"TimeUnix >= {LOOKBACK_START} AND TimeUnix <= $__toTime"
SELECTED = text_value("metric")
SELECTED_KIND = f"splitByChar(':', {SELECTED})[1]"
SELECTED_NAME = f"substring({SELECTED}, length({SELECTED_KIND}) + 2)"
GROUP_KEY = text_value("group_by")
SERIES = f"if({GROUP_KEY} = '', MetricName, concat({GROUP_KEY}, '=', Attributes[{GROUP_KEY}]))"
"""A series of the selected metric: its name, or ``key=value`` of the group-by attribute."""
RUNTIME_SERIES = (
    "concat(MetricName, if(empty(Attributes), '', concat('{', arrayStringConcat("
    "arrayMap((k, v) -> concat(k, '=', v), mapKeys(Attributes), mapValues(Attributes)), ', '), '}')))"
)
"""A runtime series: the metric name and its attributes, ``name{k=v, ...}``."""
IS_RUNTIME = f"arrayExists(p -> startsWith(MetricName, p), {_sql_array(RUNTIME_PREFIXES)})"


def _and(*conditions: str) -> str:
    return "\n  AND ".join(conditions)


def _increments(table: MetricTable, keys: str, *conditions: str) -> str:
    """:func:`increments_sql` over the service's recorded points of ``table`` passing
    ``conditions``, read from one interval before the time range."""
    where = _and(WITH_LOOKBACK, ONE_SERVICE, recorded(table), *conditions)
    return increments_sql(table, keys, where, METRIC_STEPS)


def _http(keys: str) -> str:
    return _increments(HISTOGRAM, keys, f"MetricName = '{HTTP_SERVER_DURATION}'")


ROUTE = "Attributes['http.route'] AS route"


def _selected(table: MetricTable) -> tuple[str, str]:
    """Conditions keeping the points of ``$metric`` when it is of ``table``'s type (none
    otherwise)."""
    return f"MetricName = {SELECTED_NAME}", f"{SELECTED_KIND} = '{table.kind}'"


def _selected_metric() -> str:
    """The selected metric by its type: a gauge's average, a sum's rate per second, a
    histogram's p95, per step and series (:data:`SERIES`)."""
    series = f"{SERIES} AS series"
    gauge = f"""
  SELECT $__timeInterval(TimeUnix) AS time, {SERIES} AS series, avg(Value) AS value
  FROM {GAUGE.name}
  {_where(METRIC_IN_RANGE, ONE_SERVICE, RECORDED_VALUE, *_selected(GAUGE))}
  GROUP BY series, time"""
    rate = f"""
  SELECT bucket AS time, series, {rate_sql(SUM, "$__interval_s")} AS value
  FROM ({_increments(SUM, series, *_selected(SUM))})
  GROUP BY series, time"""
    histogram = _increments(HISTOGRAM, series, *_selected(HISTOGRAM))
    quantile = f"""
  SELECT bucket AS time, series, value
  FROM ({percentiles_sql(histogram, "series", {"value": METRIC_QUANTILE})})"""
    return f"""
SELECT time, series, value
FROM ({gauge}
  UNION ALL{rate}
  UNION ALL{quantile}
)
ORDER BY time"""


def _runtime_metrics() -> str:
    """Process and runtime metrics (:data:`RUNTIME_PREFIXES`): gauges and non-monotonic sums
    (current values, such as memory in use) averaged per step, monotonic sums (such as CPU
    time) as a rate per second."""
    values = " UNION ALL ".join(
        f"SELECT TimeUnix, MetricName, Attributes, Value FROM {table.name} "
        f"WHERE {_and(METRIC_IN_RANGE, ONE_SERVICE, RECORDED_VALUE, IS_RUNTIME, *extra)}"
        for table, extra in ((GAUGE, ()), (SUM, ("NOT IsMonotonic",)))
    )
    return f"""
SELECT time, series, value
FROM (
  SELECT $__timeInterval(TimeUnix) AS time, {RUNTIME_SERIES} AS series, avg(Value) AS value
  FROM ({values})
  GROUP BY series, time
  UNION ALL
  SELECT bucket AS time, series, {rate_sql(SUM, "$__interval_s")} AS value
  FROM ({_increments(SUM, f"{RUNTIME_SERIES} AS series", IS_RUNTIME, "IsMonotonic")})
  GROUP BY series, time
)
ORDER BY time"""


def _metric_names(*conditions: str) -> str:
    """Each drawn type's metric names with points in range of the service, as ``type``,
    ``MetricName``."""
    return " UNION ALL ".join(
        f"SELECT DISTINCT '{table.kind}' AS type, MetricName FROM {table.name} "
        f"WHERE {_and(METRIC_IN_RANGE, ONE_SERVICE, *conditions)}"
        for table in METRIC_KINDS
    )


def metrics_variables() -> list[dict[str, Any]]:
    services = " UNION ALL ".join(
        f"SELECT ServiceName FROM {table.name} WHERE {METRIC_IN_RANGE}" for table in METRIC_TABLES
    )
    metric = (
        "SELECT concat(MetricName, ' (', type, ')') AS __text, concat(type, ':', MetricName) AS __value "
        f"FROM ({_metric_names()}) ORDER BY MetricName, type"
    )
    keys = " UNION ALL ".join(
        f"SELECT arrayJoin(mapKeys(Attributes)) AS key FROM {table.name} "
        f"WHERE {_and(METRIC_IN_RANGE, ONE_SERVICE, *_selected(table))}"
        for table in METRIC_KINDS
    )
    group_by = (
        "SELECT __text, __value FROM (SELECT 'none' AS __text, '' AS __value, 0 AS o UNION ALL "
        f"SELECT DISTINCT key, key, 1 FROM ({keys})) ORDER BY o, __text"
    )
    return [
        query_variable("service", "Service",
                       f"SELECT DISTINCT ServiceName FROM ({services}) ORDER BY ServiceName",
                       multi=False, include_all=False),
        query_variable("metric", "Metric", metric, multi=False, include_all=False),
        {**query_variable("group_by", "Group by attribute", group_by, multi=False, include_all=False),
         "sort": 0},
    ]


def metrics() -> dict[str, Any]:
    http = f"{HTTP_SERVER_DURATION} histogram"
    return dashboard(
        METRICS_UID,
        "otelhouse / Metrics",
        "A service's HTTP server metrics, any metric it reports by type, and its runtime metrics "
        "(the otel_metrics_* tables), counted as the metrics API counts.",
        metrics_variables(),
        [
            timeseries(
                "HTTP request rate",
                f"""
SELECT bucket AS time, route, {rate_sql(HISTOGRAM, "$__interval_s")} AS requests_per_s
FROM ({_http(ROUTE)})
GROUP BY route, time
ORDER BY time""",
                unit="reqps",
                description=f"Requests per second per route: new observations of the {http}, "
                            "across counter resets and restarts.",
            ),
            timeseries(
                "HTTP error rate",
                f"""
SELECT bucket AS time, route, sumIf(d_count, error) / sum(d_count) AS error_rate
FROM ({_http(f"{ROUTE}, {HTTP_METRIC_ERROR} AS error")})
GROUP BY route, time
HAVING sum(d_count) > 0
ORDER BY time""",
                unit="percentunit",
                description="Share of requests per route that failed: error.type set or "
                            "http.response.status_code >= 500.",
            ),
            timeseries(
                "HTTP latency percentiles",
                f"""
SELECT bucket AS time, route, {", ".join(HTTP_QUANTILES)}
FROM ({percentiles_sql(_http(ROUTE), "route", HTTP_QUANTILES)})
ORDER BY time""",
                unit="s",
                description=f"p50, p90 and p99 per route, interpolated within the {http}'s buckets "
                            "as Prometheus' histogram_quantile does.",
                width=24,
            ),
            timeseries(
                "Selected metric",
                _selected_metric(),
                unit="short",
                description="The metric picked above, per group-by attribute value: a gauge's "
                            "average, a sum's rate per second (across resets), a histogram's p95.",
                width=24,
            ),
            timeseries(
                "Runtime metrics",
                _runtime_metrics(),
                unit="short",
                description="Process and runtime metrics (process.*, jvm.*, go.*, ...) when the "
                            "service reports them: gauges and up-down counters averaged, "
                            "counters (such as CPU time) per second.",
                width=24,
            ),
        ],
    )


DASHBOARDS = {
    "service-overview.json": service_overview,
    "endpoint-detail.json": endpoint_detail,
    "exceptions.json": exceptions,
    "traces.json": traces,
    "logs.json": logs,
    "metrics.json": metrics,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    DASHBOARD_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (DASHBOARD_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {DASHBOARD_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
