-- One row per exception event, filled on insert by a materialized view. About 2% of spans
-- carry an exception and they are spread over every granule, so grouping them from
-- otel_traces reads the whole event columns (~0.5 s at 10M spans); this table holds only
-- them. It is an addition no other writer needs to know: the view fills it whoever inserts
-- into otel_traces (otelhouse or the Collector).
CREATE TABLE IF NOT EXISTS ${database}.otelhouse_exceptions (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Type LowCardinality(String) CODEC(ZSTD(1)),
    Message String CODEC(ZSTD(1)),
    Stacktrace String CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, Type, Timestamp)
${ttl_traces}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1,
    non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.otelhouse_exceptions_mv
TO ${database}.otelhouse_exceptions
AS SELECT
    event_time AS Timestamp,
    ServiceName,
    TraceId,
    SpanId,
    attributes['exception.type'] AS Type,
    attributes['exception.message'] AS Message,
    attributes['exception.stacktrace'] AS Stacktrace
FROM ${database}.otel_traces
ARRAY JOIN `Events.Timestamp` AS event_time, `Events.Name` AS event_name,
           `Events.Attributes` AS attributes
WHERE event_name = 'exception';

-- Backfill the exceptions stored before the view existed. The view comes first, so nothing
-- inserted meanwhile (by a Collector writing during the migration) is missed; spans the view
-- has already taken are skipped, so running this again never stores an event twice.
INSERT INTO ${database}.otelhouse_exceptions
SELECT event_time, ServiceName, TraceId, SpanId, attributes['exception.type'],
       attributes['exception.message'], attributes['exception.stacktrace']
FROM ${database}.otel_traces
ARRAY JOIN `Events.Timestamp` AS event_time, `Events.Name` AS event_name,
           `Events.Attributes` AS attributes
WHERE event_name = 'exception'
  AND (TraceId, SpanId) NOT IN (SELECT TraceId, SpanId FROM ${database}.otelhouse_exceptions);
