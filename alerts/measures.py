"""A rule's measure as one SQL query over its window, every value bound.

:func:`measure_query` returns SQL whose rows are the group's values (in ``group_by`` order)
then ``value``; for ``absent`` rules ``value`` is the count of rows in the window and
``previous`` the count in the window before it. Without ``group_by`` the query has exactly
one row; a ratio or percentile over no rows is NaN (no data, never a breach).

Requests and errors are :mod:`otelhouse.storage.semantics`' definitions; severity "and
above" is its level ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otelhouse.alerts.rules import Rule
from otelhouse.storage.semantics import ERROR, MAX_SEVERITY_NUMBER, REQUEST, severity_floor
from otelhouse.storage.tables import (
    LOGS_TABLE,
    METRICS_GAUGE_TABLE,
    METRICS_SUM_TABLE,
    TRACES_TABLE,
)

NS_PER_S = 1_000_000_000
_GROUP_COLUMNS = {"service": "ServiceName", "operation": "SpanName"}
_NS_RANGE = (
    "Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})"
)
_S_RANGE = "TimeUnix >= toDateTime({start_s:Int64}) AND TimeUnix < toDateTime({end_s:Int64})"
_TRACE_VALUES = {
    "requests": "toFloat64(count())",
    "errors": f"toFloat64(countIf({ERROR}))",
    "error_rate": f"if(count() = 0, nan, countIf({ERROR}) / count())",
    "p50": "quantile(0.5)(Duration) / 1e6",
    "p90": "quantile(0.9)(Duration) / 1e6",
    "p95": "quantile(0.95)(Duration) / 1e6",
    "p99": "quantile(0.99)(Duration) / 1e6",
}


@dataclass(frozen=True, slots=True)
class BoundQuery:
    sql: str
    parameters: dict[str, Any]


def measure_query(rule: Rule, end_ns: int) -> BoundQuery:
    """The query of ``rule``'s value per group over ``[end - window, end)`` (``absent``: and
    the window before it)."""
    window_ns = int(rule.window_s * NS_PER_S)
    start_ns = end_ns - window_ns * (2 if rule.absent else 1)
    conditions: list[str] = []
    params: dict[str, Any] = {}
    where = rule.where
    if "service" in where:
        conditions.append("ServiceName = {service:String}")
        params["service"] = where["service"]
    if rule.signal == "metrics":
        conditions += [_S_RANGE, "MetricName = {metric:String}"]
        params |= {"start_s": start_ns // NS_PER_S, "end_s": -(-end_ns // NS_PER_S)}
        params["metric"] = where["metric"]
        time_ns = "toUnixTimestamp(TimeUnix) * 1000000000"
    else:
        conditions.append(_NS_RANGE)
        params |= {"start_ns": start_ns, "end_ns": end_ns}
        time_ns = "toUnixTimestamp64Nano(Timestamp)"
    if rule.signal == "traces":
        conditions.append(REQUEST)
        if "operation" in where:
            conditions.append("SpanName = {operation:String}")
            params["operation"] = where["operation"]
    if rule.signal == "logs":
        if "severity" in where:
            conditions.append(
                f"SeverityNumber BETWEEN {{min_severity:UInt8}} AND {MAX_SEVERITY_NUMBER}"
            )
            params["min_severity"] = severity_floor(where["severity"])
        if "q" in where:
            conditions.append("positionCaseInsensitive(Body, {q:String}) > 0")
            params["q"] = where["q"]
        for index, (key, value) in enumerate(sorted(where.get("attr", {}).items())):
            conditions.append(f"LogAttributes[{{attr_key_{index}:String}}] = {{attr_value_{index}:String}}")
            params[f"attr_key_{index}"] = key
            params[f"attr_value_{index}"] = str(value)
    groups = [f"{_GROUP_COLUMNS[key]} AS g_{key}" for key in rule.group_by]
    group_sql = f" GROUP BY {', '.join(f'g_{key}' for key in rule.group_by)}" if groups else ""
    filters = " AND ".join(conditions)
    if rule.absent:
        params["split_ns"] = end_ns - window_ns
        table = {"traces": TRACES_TABLE, "logs": LOGS_TABLE, "metrics": METRICS_GAUGE_TABLE}
        sources = [table[rule.signal]]
        if rule.signal == "metrics":
            sources.append(METRICS_SUM_TABLE)
        union = " UNION ALL ".join(
            f"SELECT {', '.join(['ServiceName', *(['SpanName'] if rule.signal == 'traces' else [])])}, "
            f"{time_ns} AS t FROM {source} WHERE {filters}"
            for source in sources
        )
        values = (
            "toFloat64(countIf(t >= {split_ns:Int64})) AS value, "
            "toFloat64(countIf(t < {split_ns:Int64})) AS previous"
        )
        return BoundQuery(
            f"SELECT {', '.join([*groups, values])} FROM ({union}){group_sql}", params
        )
    if rule.signal == "traces":
        value = _TRACE_VALUES[rule.measure]
        sql = f"SELECT {', '.join([*groups, f'{value} AS value'])} FROM {TRACES_TABLE} WHERE {filters}"
    elif rule.signal == "logs":
        sql = f"SELECT {', '.join([*groups, 'toFloat64(count()) AS value'])} FROM {LOGS_TABLE} WHERE {filters}"
    elif rule.measure in ("avg", "last"):
        value = "avg(Value)" if rule.measure == "avg" else "argMax(Value, TimeUnix)"
        sql = (
            f"SELECT {', '.join([*groups, f'if(count() = 0, nan, {value}) AS value'])} "
            f"FROM {METRICS_GAUGE_TABLE} WHERE {filters}"
        )
    else:
        params["window_s"] = rule.window_s
        inner_groups = "".join(f"{_GROUP_COLUMNS[key]} AS g_{key}, " for key in rule.group_by)
        series = (
            f"SELECT {inner_groups}if(any(AggregationTemporality) = 1, sum(Value), "
            "greatest(argMax(Value, TimeUnix) - argMin(Value, TimeUnix), 0)) AS increase "
            f"FROM {METRICS_SUM_TABLE} WHERE {filters} "
            "GROUP BY ServiceName, Attributes, ResourceAttributes"
        )
        outer = [f"g_{key}" for key in rule.group_by]
        sql = (
            f"SELECT {', '.join([*outer, 'if(count() = 0, nan, sum(increase) / {window_s:Float64}) AS value'])} "
            f"FROM ({series}){group_sql}"
        )
        return BoundQuery(sql, params)
    return BoundQuery(sql + group_sql, params)


def group_labels(rule: Rule, row: tuple[Any, ...]) -> dict[str, str]:
    """The labels of a result row's group."""
    return {key: str(value) for key, value in zip(rule.group_by, row, strict=False)}
