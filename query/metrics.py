"""Query builders on the five ``otel_metrics_*`` tables: the metric catalogue and time series
of one metric, every answer computed in ClickHouse with each value a bound parameter.

**Series.** A point belongs to the series of its metric name, service, resource attributes,
scope and attributes. Points flagged "no recorded value" (flag bit 1) and NaN values are
skipped.

**Increments** (``rate``, ``increase``, and every histogram aggregation). A delta point's
value is its own increment. A cumulative point's increment is its value minus the previous
point's of its series, unless it starts a new run: a different ``StartTimeUnix``, or (for a
monotonic sum or a histogram) a value below the previous one (a counter reset or a process
restart), whose increment is then its whole value, counted from 0. The first point of a
series is read from up to one step before the range, so the range's first bucket has an
increment; if it has no earlier point there, its value counts only when its series started
after that look-back (``StartTimeUnix``), as its history is otherwise unknown. A bucket's
``increase`` is the sum of its points' increments over the grouped series; ``rate`` is that
per second of the step.

**Percentiles** of explicit-bucket histograms: the bucket counts' increments are summed per
group and step, then the rank ``q × total`` is found in the cumulative counts and
interpolated linearly within its bucket, between the bucket's lower and upper bounds
(the first bucket's lower bound is 0 when its upper bound is positive, as in Prometheus;
a rank in the overflow bucket answers the highest bound). Points whose bounds differ are
summed per bound set, and the set holding most observations answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from otelhouse.query.filters import BoundQuery, Where, map_entry
from otelhouse.query.params import TimeRange
from otelhouse.storage.metrics import (
    EXPONENTIAL_HISTOGRAM,
    GAUGE,
    HISTOGRAM,
    METRIC_TABLES,
    SUM,
    SUMMARY,
    MetricTable,
)

NS_PER_S = 1_000_000_000
TIME_RANGE = "TimeUnix >= toDateTime({from_s:Int64}) AND TimeUnix <= toDateTime({to_s:Int64})"
RECORDED = "bitAnd(Flags, 1) = 0"
RECORDED_VALUE = f"{RECORDED} AND NOT isNaN(Value)"
PERCENTILES: dict[str, float] = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
VALUE_AGGS = ("avg", "min", "max", "last")
COUNTER_AGGS = ("rate", "increase")
HISTOGRAM_AGGS = (*PERCENTILES, "avg", "rate")
MAX_GROUP_BY = 5

AGGREGATIONS: dict[MetricTable, tuple[str, ...]] = {
    GAUGE: VALUE_AGGS,
    SUM: (*COUNTER_AGGS, *VALUE_AGGS),
    HISTOGRAM: HISTOGRAM_AGGS,
    EXPONENTIAL_HISTOGRAM: ("avg", "rate"),
    SUMMARY: ("avg", "rate"),
}
"""The ``agg`` values each metric type answers; the first is the default."""

TEMPORALITIES = {0: "unspecified", 1: "delta", 2: "cumulative"}


def metric_filter(from_s: int, to_s: int, service: str | None) -> Where:
    """Points with a time in ``[from_s, to_s]`` (epoch seconds, the tables' resolution), of
    ``service`` when given."""
    where = Where().and_(TIME_RANGE, from_s=from_s, to_s=to_s)
    return where if service is None else where.and_("ServiceName = {service:String}", service=service)


def _seconds(time_range: TimeRange) -> tuple[int, int]:
    return time_range.start_ns // NS_PER_S, time_range.end_ns // NS_PER_S


def catalogue_query(time_range: TimeRange, service: str | None) -> BoundQuery:
    """One row per (type, metric name) with points in the range: unit, description, services,
    attribute keys and, where the type has them, monotonicity and temporality."""
    where = metric_filter(*_seconds(time_range), service)
    parts = []
    for table in METRIC_TABLES:
        monotonic = "toNullable(any(IsMonotonic))" if table is SUM else "CAST(NULL, 'Nullable(Bool)')"
        temporality = (
            "toNullable(any(AggregationTemporality))"
            if "AggregationTemporality" in table.columns
            else "CAST(NULL, 'Nullable(Int32)')"
        )
        parts.append(
            f"SELECT '{table.kind}' AS type, MetricName AS name, any(MetricUnit) AS unit, "
            f"any(MetricDescription) AS description, "
            f"arraySort(groupUniqArray(ServiceName)) AS services, "
            f"arraySort(groupUniqArrayArray(mapKeys(Attributes))) AS attribute_keys, "
            f"{monotonic} AS monotonic, {temporality} AS temporality "
            f"FROM {table.name} WHERE {where.sql} GROUP BY MetricName"
        )
    return f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY name, type", where.bind()


def metric_type_query(name: str, time_range: TimeRange) -> BoundQuery:
    """The types (table kinds) that hold points named ``name`` in the range."""
    where = metric_filter(*_seconds(time_range), None).and_(
        "MetricName = {name:String}", name=name
    )
    sql = " UNION ALL ".join(
        f"SELECT '{table.kind}' AS type FROM (SELECT 1 FROM {table.name} WHERE {where.sql} LIMIT 1)"
        for table in METRIC_TABLES
    )
    return sql, where.bind()


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    """What ``/metrics/query`` asked for, validated: ``group_by`` attribute keys,
    ``where`` (key, value) attribute filters, ``agg`` valid for ``table``."""

    table: MetricTable
    name: str
    agg: str
    step_s: int
    time_range: TimeRange
    service: str | None = None
    where: tuple[tuple[str, str], ...] = ()
    group_by: tuple[str, ...] = ()


def _filters(request: SeriesRequest, since_s: int) -> Where:
    where = metric_filter(since_s, _seconds(request.time_range)[1], request.service).and_(
        "MetricName = {name:String}", name=request.name
    )
    for i, (key, value) in enumerate(request.where):
        condition, parameters = map_entry("Attributes", i, key, value)
        where = where.and_(condition, **parameters)
    return where.and_(recorded(request.table))


def _labels(group_by: Sequence[str]) -> tuple[str, dict[str, str]]:
    """SQL of the group's label values (an array in ``group_by`` order) and its bindings."""
    items = [f"Attributes[{{g{i}:String}}]" for i in range(len(group_by))]
    return f"[{', '.join(items)}]::Array(String)", {f"g{i}": key for i, key in enumerate(group_by)}


def recorded(table: MetricTable) -> str:
    """The condition keeping ``table``'s points that have a value (module docstring)."""
    return RECORDED_VALUE if table in (GAUGE, SUM) else RECORDED


@dataclass(frozen=True, slots=True)
class Steps:
    """Where points fall in time, as SQL: ``bucket`` a point's step (from ``TimeUnix``),
    ``since`` the look-back's start and ``start`` the range's start (both ``DateTime``).
    The rows read must be those from ``since`` on."""

    bucket: str
    since: str
    start: str


_BUCKET = "intDiv(toUnixTimestamp(TimeUnix), {step_s:UInt32}) * {step_s:UInt32}"
API_STEPS = Steps(_BUCKET, "toDateTime({from_s:Int64})", "toDateTime({start_s:Int64})")
"""The API's steps: epoch-second buckets of ``step_s``, bound parameters for the times."""
_WINDOW = (
    "WINDOW w AS (PARTITION BY cityHash64(MetricName, ServiceName, ResourceAttributes, "
    "ScopeName, Attributes) ORDER BY TimeUnix, {order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
)


def series_query(request: SeriesRequest) -> BoundQuery:
    """Rows of (``labels`` array, ``bucket`` epoch second, ``value``) answering ``request``,
    ordered by labels and bucket; buckets without a value are absent."""
    start_s = request.time_range.start_ns // NS_PER_S
    table, agg = request.table, request.agg
    labels_sql, label_params = _labels(request.group_by)
    if table in (GAUGE, SUM) and agg in VALUE_AGGS:
        where = _filters(request, start_s)
        value = {
            "avg": "avg(Value)", "min": "min(Value)", "max": "max(Value)",
            "last": "argMax(Value, TimeUnix)",
        }[agg]
        sql = (
            f"SELECT {labels_sql} AS labels, {_BUCKET} AS bucket, {value} AS value "
            f"FROM {table.name} WHERE {where.sql} GROUP BY labels, bucket ORDER BY labels, bucket"
        )
        return sql, where.bind(step_s=request.step_s, **label_params)
    where = _filters(request, start_s - request.step_s)
    increments = increments_sql(table, f"{labels_sql} AS labels", where.sql, API_STEPS)
    params = where.bind(step_s=request.step_s, start_s=start_s, **label_params)
    if agg in PERCENTILES:
        sql = percentiles_sql(increments, "labels", {"value": "{q:Float64}"})
        return f"{sql} ORDER BY labels, bucket", {**params, "q": PERCENTILES[agg]}
    value = {
        "increase": "sum(d_value)",
        "rate": rate_sql(table, "{step_s:UInt32}"),
        "avg": "sum(d_sum) / sum(d_count)",
    }[agg]
    having = " HAVING sum(d_count) > 0" if agg == "avg" else ""
    sql = (
        f"SELECT labels, bucket, {value} AS value FROM ({increments}) "
        f"GROUP BY labels, bucket{having} ORDER BY labels, bucket"
    )
    return sql, params


def rate_sql(table: MetricTable, step_s: str) -> str:
    """Per second of a step of ``step_s`` seconds, aggregating rows of :func:`increments_sql`:
    a sum's increase, or a histogram's (or summary's) count of new observations."""
    return f"sum({'d_value' if table is SUM else 'd_count'}) / {step_s}"


def percentiles_sql(increments: str, keys: str, quantiles: dict[str, str]) -> str:
    """Rows of (``keys``, ``bucket``, one column per entry of ``quantiles``: name → SQL of
    the quantile in [0, 1]) from the rows of :func:`increments_sql` on the histogram table,
    grouped by the comma-separated ``keys`` columns and the bucket, interpolated as the
    module docstring says; unordered."""
    inner = ", ".join(
        f"{_percentile_sql('counts', 'ExplicitBounds', q)} AS {name}" for name, q in quantiles.items()
    )
    outer = ", ".join(f"argMax({name}, total) AS {name}" for name in quantiles)
    return (
        f"SELECT {keys}, bucket, {outer} FROM ("
        f"SELECT {keys}, bucket, sumForEach(d_counts) AS counts, arraySum(counts) AS total, "
        f"{inner} FROM ({increments}) WHERE length(d_counts) > 0 "
        f"GROUP BY {keys}, bucket, ExplicitBounds HAVING total > 0) "
        f"GROUP BY {keys}, bucket"
    )


def increments_sql(table: MetricTable, keys: str, where: str, steps: Steps) -> str:
    """Per point of ``table`` passing ``where`` (which must keep only recorded points of the
    wanted metric from ``steps.since`` on): the select-list ``keys`` (SQL over the table's
    columns, each with an alias), ``bucket`` and its increments (``d_value`` for sums;
    ``d_count``, ``d_sum`` and, for explicit histograms, ``d_counts`` and
    ``ExplicitBounds``), points before ``steps.start`` dropped (see the module docstring)."""
    if table is SUM:
        columns, new_run = "Value, IsMonotonic", "IsMonotonic AND Value < prev_value"
        deltas = {"d_value": ("Value", "Value - prev_value", "0")}
        previous = ["Value"]
    else:
        columns, new_run = "Count, Sum", "Count < prev_count"
        deltas = {
            "d_count": ("toInt64(Count)", "toInt64(Count) - toInt64(prev_count)", "0"),
            "d_sum": ("Sum", "Sum - prev_sum", "0"),
        }
        previous = ["Count", "Sum"]
        if table is HISTOGRAM:
            columns += ", BucketCounts, ExplicitBounds"
            new_run += " OR ExplicitBounds != prev_bounds"
            deltas["d_counts"] = (
                "arrayMap(c -> toInt64(c), BucketCounts)",
                "arrayMap((c, i) -> toInt64(c) - toInt64(prev_counts[i]), BucketCounts, "
                "arrayEnumerate(BucketCounts))",
                "arrayMap(c -> toInt64(0), BucketCounts)",
            )
            previous += ["BucketCounts AS prev_counts", "ExplicitBounds AS prev_bounds"]
    lags = ", ".join(
        f"lagInFrame({column}) OVER w AS {alias or 'prev_' + column.lower()}"
        for column, _, alias in (entry.partition(" AS ") for entry in ["StartTimeUnix", *previous])
    )
    temporality = "AggregationTemporality" if "AggregationTemporality" in table.columns else "2"
    selected = ", ".join(
        f"multiIf(AggregationTemporality = 1, {whole}, n = 1, "
        f"if(StartTimeUnix >= {steps.since}, {whole}, {nothing}), "
        f"StartTimeUnix != prev_starttimeunix OR {new_run}, {whole}, {diff}) AS {alias}"
        for alias, (whole, diff, nothing) in deltas.items()
    )
    bounds = ", ExplicitBounds" if table is HISTOGRAM else ""
    return (
        f"SELECT {keys}, {steps.bucket} AS bucket{bounds}, {selected} "
        f"FROM (SELECT ServiceName, ResourceAttributes, ScopeName, Attributes, MetricName, "
        f"StartTimeUnix, TimeUnix, {columns}, {temporality} AS AggregationTemporality, "
        f"row_number() OVER w AS n, {lags} "
        f"FROM {table.name} WHERE {where} {_WINDOW.format(order=previous[0])}) "
        f"WHERE TimeUnix >= {steps.start}"
    )


def _percentile_sql(counts: str, bounds: str, q: str) -> str:
    """The interpolated ``q`` quantile of summed bucket ``counts`` with ``bounds`` (module
    docstring), as one ClickHouse expression."""
    cum = f"arrayCumSum({counts})"
    rank = f"({q} * arraySum({counts}))"
    idx = f"arrayFirstIndex(c -> c >= {rank}, {cum})"
    n = f"length({bounds})"
    upper = f"{bounds}[least({idx}, {n})]"
    lower = (
        f"multiIf({idx} > {n}, {bounds}[{n}], {idx} = 1, "
        f"if({bounds}[1] > 0, 0, {bounds}[1]), {bounds}[{idx} - 1])"
    )
    before = f"if({idx} = 1, 0, {cum}[{idx} - 1])"
    return (
        f"if({idx} > {n}, {bounds}[{n}], "
        f"{lower} + ({upper} - {lower}) * ({rank} - {before}) / {counts}[{idx}])"
    )


def series_json(rows: Sequence[dict[str, Any]], group_by: Sequence[str]) -> list[dict[str, Any]]:
    """``{labels, points: [[epoch s, value], ...]}`` per label combination, in row order;
    non-finite values (a 0/0 average) are left out."""
    series: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        values = tuple(row["labels"])
        value = row["value"]
        if value is None or value != value or value in (float("inf"), float("-inf")):
            continue
        entry = series.setdefault(
            values, {"labels": dict(zip(group_by, values)), "points": []}
        )
        entry["points"].append([row["bucket"], value])
    return list(series.values())
