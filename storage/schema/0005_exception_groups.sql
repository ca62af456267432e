-- The one rule that groups exceptions: every reader (the query API's /api/v1/exceptions, the
-- Grafana Exceptions dashboard, anyone's ad-hoc SQL) groups by (Type, NormalizedMessage), so
-- the same events always make the same groups. The message is masked where it varies between
-- occurrences of one problem, in this order (each pass sees the previous one's output):
--   1. quoted strings: '...' or "..." opened after a non-word character (so the apostrophe of
--      "can't" opens nothing) → <str>, as a quoted value is data whatever it contains; except
--      when the quoted string is the whole message: Python's KeyError message is the repr of
--      the missing key, and which key is missing tells the problems apart, so it is kept
--      (with its ids and numbers masked by the next passes);
--   2. UUIDs (either case) → <uuid>;
--   3. hex words → <hex>: 0x-prefixed, or 16 hex digits or more (span and trace ids, even the
--      rare ones with no letter or no digit), or any word mixing hex digits and a-f letters
--      (short ids, addresses); plain words such as "cafe" stay;
--   4. any remaining run of digits → <n> ("1.5" → "<n>.<n>").
-- MATERIALIZED: computed once on insert, as the RE2 passes cost ~1 s per million exceptions
-- at every read otherwise (chdb, 2 cores); parts stored before this migration compute it on
-- read with the same expression. A change of the rule is a new migration that modifies this
-- column and materializes it again, so that old and new events group together.
ALTER TABLE ${database}.otelhouse_exceptions
    ADD COLUMN IF NOT EXISTS NormalizedMessage String MATERIALIZED
        replaceRegexpAll(
            replaceRegexpAll(
                replaceRegexpAll(
                    if(match(Message, '\\A(?:''[^'']*''|"[^"]*")\\z'), Message,
                       replaceRegexpAll(Message, '\\B(?:''[^'']*''|"[^"]*")', '<str>')),
                    '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
                    '<uuid>'),
                '\\b(?:0[xX][0-9a-fA-F]+|[0-9a-fA-F]{16,}|[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*|[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*)\\b',
                '<hex>'),
            '[0-9]+', '<n>')
        CODEC(ZSTD(1));
