"""Names of the tables and views otelhouse's schema creates, for every piece of Python that
builds SQL on them (storage, the query API, the Grafana dashboards' generator, tests).

The migrations in ``storage/schema`` spell the same names in their DDL: they are the schema's
history and are never edited, so a rename is a new migration plus a change here.
tests/storage/test_migrations.py checks that this list and the migrated schema agree.

``TRACES_TABLE``, ``TRACE_ID_TS_TABLE`` (and its view) and ``LOGS_TABLE`` are the OpenTelemetry Collector
ClickHouse exporter's names, which Grafana's ClickHouse plugin and the Collector expect; the
``otelhouse_`` ones are otelhouse's own additions.
"""

from __future__ import annotations

TRACES_TABLE = "otel_traces"
TRACE_ID_TS_TABLE = "otel_traces_trace_id_ts"
TRACE_ID_TS_VIEW = "otel_traces_trace_id_ts_mv"
LOGS_TABLE = "otel_logs"
EXCEPTIONS_TABLE = "otelhouse_exceptions"
EXCEPTIONS_VIEW = "otelhouse_exceptions_mv"
VERSION_TABLE = "otelhouse_schema_version"
SERVICE_EDGES_TABLE = "otelhouse_service_edges"
SERVICE_EDGES_VIEW = "otelhouse_service_edges_mv"

ALL: tuple[str, ...] = (
    TRACES_TABLE,
    TRACE_ID_TS_TABLE,
    TRACE_ID_TS_VIEW,
    LOGS_TABLE,
    EXCEPTIONS_TABLE,
    EXCEPTIONS_VIEW,
    VERSION_TABLE,
    SERVICE_EDGES_TABLE,
    SERVICE_EDGES_VIEW,
)
