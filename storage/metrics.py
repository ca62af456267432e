"""Metric data point rows in column form for the five ``otel_metrics_*`` tables, and their
insert.

One OTLP metrics request carries points of every type, and the write-ahead log stores one
flat ``{field: list}`` per batch, so one :class:`MetricColumns` holds the rows of all five
tables side by side: its fields are ``<kind>_<column>`` (``sum_Value``,
``histogram_Exemplars_TraceId``), ``len`` counts the points of all of them, and
:func:`insert_metrics` writes each table that has rows in its own insert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from otelhouse.storage.tables import (
    METRICS_EXP_HISTOGRAM_TABLE,
    METRICS_GAUGE_TABLE,
    METRICS_HISTOGRAM_TABLE,
    METRICS_SUM_TABLE,
    METRICS_SUMMARY_TABLE,
)

COMMON_COLUMNS: tuple[str, ...] = (
    "ResourceAttributes",
    "ResourceSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "ScopeDroppedAttrCount",
    "ScopeSchemaUrl",
    "ServiceName",
    "MetricName",
    "MetricDescription",
    "MetricUnit",
    "Attributes",
    "StartTimeUnix",
    "TimeUnix",
)
"""The columns every metrics table starts with, in table order. Times are epoch seconds
(the tables' ``DateTime``)."""

EXEMPLAR_COLUMNS: tuple[str, ...] = (
    "Exemplars.FilteredAttributes",
    "Exemplars.TimeUnix",
    "Exemplars.Value",
    "Exemplars.SpanId",
    "Exemplars.TraceId",
)
_COUNT_SUM = ("Count", "Sum")
_MIN_MAX_TEMPORALITY = ("Flags", "Min", "Max", "AggregationTemporality")


@dataclass(frozen=True, slots=True)
class MetricTable:
    """One metrics table: ``kind`` is the ``Metric.data`` case of OTLP whose points it stores,
    ``name`` the table, ``columns`` the written columns in table order (Nested subcolumns as
    ``Exemplars.TimeUnix``) and ``fields`` their :class:`MetricColumns` fields, in the same
    order."""

    kind: str
    name: str
    columns: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f"{self.kind}_{column.replace('.', '_')}" for column in self.columns)


def _table(kind: str, name: str, *own: str) -> MetricTable:
    return MetricTable(kind, name, COMMON_COLUMNS + own)


GAUGE = _table("gauge", METRICS_GAUGE_TABLE, "Value", "Flags", *EXEMPLAR_COLUMNS)
SUM = _table(
    "sum",
    METRICS_SUM_TABLE,
    "Value",
    "Flags",
    *EXEMPLAR_COLUMNS,
    "AggregationTemporality",
    "IsMonotonic",
)
HISTOGRAM = _table(
    "histogram",
    METRICS_HISTOGRAM_TABLE,
    *_COUNT_SUM,
    "BucketCounts",
    "ExplicitBounds",
    *EXEMPLAR_COLUMNS,
    *_MIN_MAX_TEMPORALITY,
)
EXPONENTIAL_HISTOGRAM = _table(
    "exponential_histogram",
    METRICS_EXP_HISTOGRAM_TABLE,
    *_COUNT_SUM,
    "Scale",
    "ZeroCount",
    "PositiveOffset",
    "PositiveBucketCounts",
    "NegativeOffset",
    "NegativeBucketCounts",
    *EXEMPLAR_COLUMNS,
    *_MIN_MAX_TEMPORALITY,
)
SUMMARY = _table(
    "summary",
    METRICS_SUMMARY_TABLE,
    *_COUNT_SUM,
    "ValueAtQuantiles.Quantile",
    "ValueAtQuantiles.Value",
    "Flags",
)

METRIC_TABLES: tuple[MetricTable, ...] = (GAUGE, SUM, HISTOGRAM, EXPONENTIAL_HISTOGRAM, SUMMARY)
TABLES_BY_KIND: Mapping[str, MetricTable] = {table.kind: table for table in METRIC_TABLES}
METRIC_COLUMN_FIELDS: tuple[str, ...] = tuple(
    name for table in METRIC_TABLES for name in table.fields
)
_TIME_FIELD = {table: f"{table.kind}_TimeUnix" for table in METRIC_TABLES}


class MetricColumns:
    """The rows of all five metrics tables, one list per field of ``METRIC_COLUMN_FIELDS``.

    Called without arguments it is an empty batch; with keyword lists (every field, as the
    write-ahead log stores them) it is a batch of those rows. ``len`` is the number of data
    points in all tables together."""

    __slots__ = METRIC_COLUMN_FIELDS

    def __init__(self, **columns: list[Any]) -> None:
        unknown = columns.keys() - set(METRIC_COLUMN_FIELDS)
        if unknown:
            raise TypeError(f"unknown metric columns: {sorted(unknown)}")
        for name in METRIC_COLUMN_FIELDS:
            setattr(self, name, columns[name] if name in columns else [])

    def __len__(self) -> int:
        return sum(self.count(table) for table in METRIC_TABLES)

    def count(self, table: MetricTable) -> int:
        """Rows of ``table`` in this batch."""
        return len(getattr(self, _TIME_FIELD[table]))

    def extend(self, other: MetricColumns) -> None:
        """Append ``other``'s rows after this batch's, table by table."""
        for name in METRIC_COLUMN_FIELDS:
            getattr(self, name).extend(getattr(other, name))

    def lists(self, table: MetricTable) -> tuple[list[Any], ...]:
        """``table``'s column lists in table order (appending to them adds rows)."""
        return tuple(getattr(self, name) for name in table.fields)

    def rows(self, table: MetricTable) -> list[dict[str, Any]]:
        """Row view of ``table`` keyed by column name, for tests and small tools."""
        columns = self.lists(table)
        return [
            {name: column[r] for name, column in zip(table.columns, columns)}
            for r in range(self.count(table))
        ]


def insert_metrics(
    client: Client, metrics: MetricColumns, *, settings: dict[str, Any] | None = None
) -> None:
    """Insert each table's rows of one batch in one call per non-empty table; raises on the
    first failure so nothing is acknowledged. An ``insert_deduplication_token`` in
    ``settings`` is suffixed with the table's kind, so a retried or replayed batch stores
    once in every table, including those its failed attempt had already written."""
    token = (settings or {}).get("insert_deduplication_token")
    for table in METRIC_TABLES:
        if not metrics.count(table):
            continue
        table_settings = settings
        if token is not None:
            table_settings = {**settings, "insert_deduplication_token": f"{token}:{table.kind}"}
        client.insert(
            table.name,
            list(metrics.lists(table)),
            column_names=list(table.columns),
            column_oriented=True,
            settings=table_settings,
        )
