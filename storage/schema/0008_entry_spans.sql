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
