-- Alert state and history, written by the alert evaluator (alerts/): one row per transition
-- of an alert (rule + group labels, identified by Fingerprint) into pending, firing,
-- resolved or inactive. The history is every row; an alert's current state is its latest
-- row, so a restart picks up what was pending or firing (and already notified) instead of
-- notifying again. Number 0008 is left to request-level RED.
CREATE TABLE IF NOT EXISTS ${database}.otelhouse_alerts (
    Time DateTime64(3) CODEC(Delta(8), ZSTD(1)),
    Fingerprint String CODEC(ZSTD(1)),
    Alert LowCardinality(String) CODEC(ZSTD(1)),
    Labels Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Annotations Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    State LowCardinality(String) CODEC(ZSTD(1)),
    Value Float64 CODEC(ZSTD(1)),
    ActiveSince DateTime64(3) CODEC(ZSTD(1)),
    FiringSince Nullable(DateTime64(3)) CODEC(ZSTD(1)),
    Notified Bool CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(Time)
ORDER BY (Alert, Fingerprint, Time)
${ttl_alerts};
