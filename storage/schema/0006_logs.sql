-- otel_logs, column for column the current OpenTelemetry Collector clickhouseexporter schema
-- (internal/sqltemplates/logs_table.sql as a text/template, v0.152 onwards): no TimestampTime,
-- five-minute buckets leading the sort key, the exporter's materialized k8s and environment
-- columns, and its index choice: full-text (text) indexes on ClickHouse >= 26.2 (chdb 4.4 runs
-- 26.9), the exporter's bloom filters before (storage/migrations.py picks the index types).
-- Grafana's ClickHouse plugin and the Collector itself read and write it unchanged.
-- The dedup window is the one migration 0003 gave the trace tables: an insert replayed with the
-- same insert_deduplication_token is stored once.
CREATE TABLE IF NOT EXISTS ${database}.otel_logs (
    `Timestamp` DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    `TraceId` String CODEC(ZSTD(1)),
    `SpanId` String CODEC(ZSTD(1)),
    `TraceFlags` UInt8,
    `SeverityText` LowCardinality(String) CODEC(ZSTD(1)),
    `SeverityNumber` UInt8,
    `ServiceName` LowCardinality(String) CODEC(ZSTD(1)),
    `Body` String CODEC(ZSTD(1)),
    `ResourceSchemaUrl` LowCardinality(String) CODEC(ZSTD(1)),
    `ResourceAttributes` Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    `ScopeSchemaUrl` LowCardinality(String) CODEC(ZSTD(1)),
    `ScopeName` String CODEC(ZSTD(1)),
    `ScopeVersion` LowCardinality(String) CODEC(ZSTD(1)),
    `ScopeAttributes` Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    `LogAttributes` Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    `EventName` String CODEC(ZSTD(1)),
    `__otel_materialized_k8s.cluster.name` LowCardinality(String)
        MATERIALIZED ResourceAttributes['k8s.cluster.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.container.name` LowCardinality(String)
        MATERIALIZED ResourceAttributes['k8s.container.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.deployment.name` LowCardinality(String)
        MATERIALIZED ResourceAttributes['k8s.deployment.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.namespace.name` LowCardinality(String)
        MATERIALIZED ResourceAttributes['k8s.namespace.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.node.name` LowCardinality(String)
        MATERIALIZED ResourceAttributes['k8s.node.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.pod.name` LowCardinality(String)
        MATERIALIZED ResourceAttributes['k8s.pod.name'] CODEC(ZSTD(1)),
    `__otel_materialized_k8s.pod.uid` LowCardinality(String)
        MATERIALIZED ResourceAttributes['k8s.pod.uid'] CODEC(ZSTD(1)),
    `__otel_materialized_deployment.environment.name` LowCardinality(String)
        MATERIALIZED ResourceAttributes['deployment.environment.name'] CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE ${index_id},
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE ${index_values},
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE ${index_values},
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE ${index_values},
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE ${index_values},
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE ${index_values},
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE ${index_values},
    INDEX idx_lower_body lower(Body) TYPE ${index_body}
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)
${ttl_logs}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1,
    non_replicated_deduplication_window = 10000;
