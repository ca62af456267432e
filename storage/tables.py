"""Names of the tables and views otelhouse's schema creates, for every piece of Python that
builds SQL on them (storage, the query API, the Grafana dashboards' generator, tests).

The migrations in ``storage/schema`` spell the same names in their DDL: they are the schema's
history and are never edited, so a rename is a new migration plus a change here.
tests/storage/test_migrations.py checks that this list and the migrated schema agree.

``TRACES_TABLE``, ``TRACE_ID_TS_TABLE`` (and its view), ``LOGS_TABLE`` and the five ``METRICS_*``
tables are the OpenTelemetry Collector
ClickHouse exporter's names, which Grafana's ClickHouse plugin and the Collector expect; the
``otelhouse_`` ones are otelhouse's own additions.
"""

from __future__ import annotations

TRACES_TABLE = "otel_traces"
TRACE_ID_TS_TABLE = "otel_traces_trace_id_ts"
TRACE_ID_TS_VIEW = "otel_traces_trace_id_ts_mv"
LOGS_TABLE = "otel_logs"
METRICS_GAUGE_TABLE = "otel_metrics_gauge"
METRICS_SUM_TABLE = "otel_metrics_sum"
METRICS_HISTOGRAM_TABLE = "otel_metrics_histogram"
METRICS_EXP_HISTOGRAM_TABLE = "otel_metrics_exponential_histogram"
METRICS_SUMMARY_TABLE = "otel_metrics_summary"
EXCEPTIONS_TABLE = "otelhouse_exceptions"
EXCEPTIONS_VIEW = "otelhouse_exceptions_mv"
VERSION_TABLE = "otelhouse_schema_version"
ALERTS_TABLE = "otelhouse_alerts"
SERVICE_EDGES_TABLE = "otelhouse_service_edges"
SERVICE_EDGES_VIEW = "otelhouse_service_edges_mv"

ALL: tuple[str, ...] = (
    TRACES_TABLE,
    TRACE_ID_TS_TABLE,
    TRACE_ID_TS_VIEW,
    LOGS_TABLE,
    METRICS_GAUGE_TABLE,
    METRICS_SUM_TABLE,
    METRICS_HISTOGRAM_TABLE,
    METRICS_EXP_HISTOGRAM_TABLE,
    METRICS_SUMMARY_TABLE,
    EXCEPTIONS_TABLE,
    EXCEPTIONS_VIEW,
    VERSION_TABLE,
    ALERTS_TABLE,
    SERVICE_EDGES_TABLE,
    SERVICE_EDGES_VIEW,
)
