-- A service's requests are its entry spans: where work enters the service. IsRequest (0002)
-- counted Server spans and roots; a message Consumer is an entry too, so queue-driven
-- services had no requests at all. The definition also names spans whose parent belongs to
-- another service, which a MATERIALIZED column cannot see (it reads only its own row, and
-- the parent may arrive in another batch or not at all): such a span is a Server or
-- Consumer span wherever instrumentation follows the semantic conventions, as propagation
-- across a process boundary starts a Server (RPC, HTTP) or Consumer (messaging) span on the
-- receiving side. The rule stays a column so every reader (API, dashboards, the Collector's
-- tables, ad-hoc SQL) counts the same spans; docs/architecture.md records the decision.
-- MATERIALIZE COLUMN rewrites the column in parts stored before this migration (a mutation,
-- run synchronously so the migration ends with every part on the new rule).
ALTER TABLE ${database}.otel_traces
    MODIFY COLUMN IsRequest UInt8 MATERIALIZED
        SpanKind IN ('Server', 'Consumer') OR ParentSpanId = '' CODEC(ZSTD(1));

-- The peer a Client or Producer span calls, for service-map edges to callees that send no
-- spans of their own (a database, a third-party API): `peer.service`, else `server.address`
-- (or the older `net.peer.name`); empty for other kinds.
ALTER TABLE ${database}.otel_traces
    ADD COLUMN IF NOT EXISTS PeerService LowCardinality(String) MATERIALIZED
        if(SpanKind IN ('Client', 'Producer'),
           multiIf(SpanAttributes['peer.service'] != '', SpanAttributes['peer.service'],
                   SpanAttributes['server.address'] != '', SpanAttributes['server.address'],
                   SpanAttributes['net.peer.name']),
           '') CODEC(ZSTD(1));

ALTER TABLE ${database}.otel_traces
    MATERIALIZE COLUMN IsRequest, MATERIALIZE COLUMN PeerService SETTINGS mutations_sync = 2;

-- The service map's rollup: calls per (minute, caller, callee) with errors and a duration
-- sketch (p95 within 1%, mergeable), so a map over hours reads minutes instead of joining
-- millions of spans (the join costs ~10 s at 10M spans on two cores). Rows with an empty
-- Caller and Callee mark a minute the view has covered, with or without calls.
CREATE TABLE IF NOT EXISTS ${database}.otelhouse_service_edges (
    Timestamp DateTime CODEC(Delta(4), ZSTD(1)),
    Caller LowCardinality(String) CODEC(ZSTD(1)),
    Callee LowCardinality(String) CODEC(ZSTD(1)),
    Calls SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    Duration AggregateFunction(quantileDD(0.01, 0.95), UInt64)
) ENGINE = AggregatingMergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (Timestamp, Caller, Callee)
${ttl_traces}
SETTINGS ttl_only_drop_parts = 1;

-- Every minute, the minutes from the last one covered (at most a day back) to five minutes
-- ago: a call's two spans are exported by two processes, the caller's after the callee's,
-- so a minute is joined once both have had time to arrive. The join is the one of
-- query/service_map.py (calls_sql), written out here because a migration is fixed SQL;
-- tests/query/test_red.py checks that the rollup and the live join give the same edges.
CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.otelhouse_service_edges_mv
REFRESH EVERY 1 MINUTE APPEND TO ${database}.otelhouse_service_edges
AS WITH
    toDateTime(toStartOfMinute(now())) - 300 AS upto,
    greatest((SELECT max(Timestamp) + 60 FROM ${database}.otelhouse_service_edges),
             toDateTime(toStartOfMinute(now())) - 86400) AS since
SELECT Timestamp, Caller, Callee, Calls, Errors, Duration FROM (
    SELECT toDateTime(toStartOfMinute(at)) AS Timestamp, caller AS Caller, callee AS Callee,
        count() AS Calls, countIf(failed) AS Errors,
        quantileDDState(0.01, 0.95)(duration) AS Duration
    FROM (
        SELECT parent.ServiceName AS caller, child.ServiceName AS callee,
            child.failed AS failed, child.Duration AS duration, child.Timestamp AS at
        FROM (
            SELECT cityHash64(TraceId, SpanId) AS key, ServiceName
            FROM ${database}.otel_traces
            WHERE Timestamp >= since - INTERVAL 300 SECOND AND Timestamp < upto
        ) AS parent
        INNER JOIN (
            SELECT cityHash64(TraceId, ParentSpanId) AS key, ServiceName, IsError = 1 AS failed,
                Duration, Timestamp
            FROM ${database}.otel_traces
            WHERE Timestamp >= since AND Timestamp < upto AND IsRequest = 1 AND ParentSpanId != ''
        ) AS child ON child.key = parent.key
        WHERE parent.ServiceName != child.ServiceName
        UNION ALL
        SELECT call.ServiceName AS caller, call.peer AS callee, call.failed AS failed,
            call.Duration AS duration, call.Timestamp AS at
        FROM (
            SELECT cityHash64(TraceId, SpanId) AS key, ServiceName, PeerService AS peer,
                IsError = 1 AS failed, Duration, Timestamp
            FROM ${database}.otel_traces
            WHERE Timestamp >= since AND Timestamp < upto AND PeerService != ''
        ) AS call
        LEFT ANTI JOIN (
            SELECT cityHash64(TraceId, ParentSpanId) AS key
            FROM ${database}.otel_traces
            WHERE Timestamp >= since AND Timestamp < upto + INTERVAL 300 SECOND
                AND IsRequest = 1 AND ParentSpanId != ''
        ) AS child ON child.key = call.key
    )
    GROUP BY Timestamp, Caller, Callee
    UNION ALL
    SELECT since + arrayJoin(range(toUInt32(greatest(dateDiff('minute', since, upto), 0)))) * 60
            AS Timestamp,
        '' AS Caller, '' AS Callee, toUInt64(0) AS Calls, toUInt64(0) AS Errors,
        quantileDDStateIf(0.01, 0.95)(toUInt64(0), 0) AS Duration
    GROUP BY Timestamp
);
