-- Idempotent inserts: the write-ahead log's drainer tags every insert with a deterministic
-- insert_deduplication_token, so an insert retried after a timeout or replayed after a crash
-- is dropped instead of doubling rows. Plain MergeTree remembers no blocks by default
-- (non_replicated_deduplication_window = 0); keep the last 10000, ClickHouse's default for
-- replicated tables. Inserts without a token are then deduplicated by the hash of their
-- data, which for spans (ids and timestamps included) only ever drops true duplicates.
-- The lookup table gets the same window: with deduplicate_blocks_in_dependent_materialized_views
-- (on by default since ClickHouse 25) a repeated block then reaches neither table.
ALTER TABLE ${database}.otel_traces
    MODIFY SETTING non_replicated_deduplication_window = 10000;

ALTER TABLE ${database}.otel_traces_trace_id_ts
    MODIFY SETTING non_replicated_deduplication_window = 10000;
