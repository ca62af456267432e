-- Hot semantic-convention attributes as MATERIALIZED columns: computed by ClickHouse on insert
-- whoever the writer is (otelhouse or the Collector), never named by writers, and read without
-- decompressing the whole SpanAttributes map (facts.md: 5-7x faster group-bys at 10M spans).
-- Both the current (http.request.method, http.response.status_code) and the older
-- (http.method, http.status_code) semantic-convention names are recognised.
ALTER TABLE ${database}.otel_traces
    ADD COLUMN IF NOT EXISTS HttpMethod LowCardinality(String) MATERIALIZED
        if(SpanAttributes['http.request.method'] != '', SpanAttributes['http.request.method'],
           SpanAttributes['http.method']) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS HttpRoute LowCardinality(String) MATERIALIZED
        SpanAttributes['http.route'] CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS HttpStatusCode UInt16 MATERIALIZED
        toUInt16OrZero(if(SpanAttributes['http.response.status_code'] != '',
                          SpanAttributes['http.response.status_code'],
                          SpanAttributes['http.status_code'])) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS IsError UInt8 MATERIALIZED
        StatusCode = 'Error' OR toUInt16OrZero(if(SpanAttributes['http.response.status_code'] != '',
                                                 SpanAttributes['http.response.status_code'],
                                                 SpanAttributes['http.status_code'])) >= 500
        CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS IsRequest UInt8 MATERIALIZED
        SpanKind = 'Server' OR ParentSpanId = '' CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS ClientAddress String MATERIALIZED
        if(SpanAttributes['client.address'] != '', SpanAttributes['client.address'],
           SpanAttributes['net.peer.ip']) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS ExceptionTypes Array(String) MATERIALIZED
        arrayMap(a -> a['exception.type'],
                 arrayFilter((a, n) -> n = 'exception', `Events.Attributes`, `Events.Name`))
        CODEC(ZSTD(1));
