"""Migration 0004: ``otelhouse_exceptions`` holds every exception event of ``otel_traces``,
backfilled for data stored before the migration and filled on insert afterwards, with nothing
missed or doubled when another writer inserts while it runs or when it runs again. Migration
0005: its normalised message, the same for events stored before and after it."""

from __future__ import annotations

import random
import time
from collections import Counter

from clickhouse_connect.driver.client import Client

from otelhouse.storage.semantics import EXCEPTION_MESSAGE
from otelhouse.settings import Settings
from otelhouse.storage import migrate, open_client
from otelhouse.storage.migrations import load_migrations
from otelhouse.storage.tables import EXCEPTIONS_TABLE, EXCEPTIONS_VIEW, VERSION_TABLE
from otelhouse.storage.traces import insert_spans
from tests.query.spans import Event, Span, random_id, to_columns

def spans_with_events(rng: random.Random, count: int) -> tuple[list[Span], set[tuple]]:
    """Spans with exception and other events, and the exception rows expected from them."""
    now = time.time_ns()
    spans, expected = [], set()
    for i in range(count):
        trace_id, span_id = random_id(rng, 32), random_id(rng, 16)
        start = now - rng.randrange(10**9, 10**11)
        events = [Event(start + 1, "log", {"exception.type": "NotAnException"})]
        for j in range(i % 3):
            attributes = {
                "exception.type": f"Error{j}",
                "exception.message": f"failed {i}.{j}",
                "exception.stacktrace": f"Traceback {i}" if j else "",
            }
            events.append(Event(start + 10 + j, "exception", attributes))
            expected.add(
                (start + 10 + j, f"svc{i % 2}", trace_id, span_id, f"Error{j}", f"failed {i}.{j}",
                 f"Traceback {i}" if j else "")
            )
        spans.append(Span(f"svc{i % 2}", "op", start, 1000, trace_id, span_id, events=tuple(events)))
    return spans, expected


def stored(storage: Client) -> set[tuple]:
    rows = storage.query(
        "SELECT toUnixTimestamp64Nano(Timestamp), ServiceName, TraceId, SpanId, Type, Message, "
        f"Stacktrace FROM {EXCEPTIONS_TABLE}"
    ).result_rows
    assert len(rows) == len(set(rows)), "an exception event was stored twice"
    return set(rows)


def undo_migration_4(storage: Client) -> None:
    storage.command(f"DROP VIEW {EXCEPTIONS_VIEW}")
    storage.command(f"DROP TABLE {EXCEPTIONS_TABLE}")
    storage.command(f"DELETE FROM {VERSION_TABLE} WHERE version = 4")


def test_exception_events_are_backfilled_once_then_filled_on_insert(
    settings: Settings, storage: Client
) -> None:
    rng = random.Random(4)
    before, expected_before = spans_with_events(rng, 40)
    insert_spans(storage, to_columns(before))
    assert stored(storage) == expected_before

    undo_migration_4(storage)
    config = settings.storage_config()
    admin = open_client(config, database="")
    try:
        assert migrate(admin, config) == [4]
        assert migrate(admin, config) == []
    finally:
        admin.close()
    assert stored(storage) == expected_before

    after, expected_after = spans_with_events(rng, 30)
    insert_spans(storage, to_columns(after), settings={"insert_deduplication_token": "t-1"})
    insert_spans(storage, to_columns(after), settings={"insert_deduplication_token": "t-1"})
    assert stored(storage) == expected_before | expected_after


def test_spans_written_while_the_migration_runs_are_stored_once_and_a_rerun_adds_nothing(
    settings: Settings, storage: Client
) -> None:
    rng = random.Random(5)
    before, expected_before = spans_with_events(rng, 25)
    insert_spans(storage, to_columns(before))
    undo_migration_4(storage)
    (migration,) = [m for m in load_migrations(settings.storage_config()) if m.version == 4]
    create_table, create_view, backfill = migration.statements

    storage.command(create_table)
    storage.command(create_view)
    meanwhile, expected_meanwhile = spans_with_events(rng, 25)
    insert_spans(storage, to_columns(meanwhile))
    storage.command(backfill)
    assert stored(storage) == expected_before | expected_meanwhile

    for statement in migration.statements:
        storage.command(statement)
    assert stored(storage) == expected_before | expected_meanwhile


def test_events_stored_before_migration_5_get_the_normalised_message_too(
    settings: Settings, storage: Client
) -> None:
    """Migration 0005 adds a MATERIALIZED column: parts written before it compute the value on
    read, with the rule that new inserts store, so old and new events fall in one group."""
    storage.command(f"ALTER TABLE {EXCEPTIONS_TABLE} DROP COLUMN {EXCEPTION_MESSAGE}")
    storage.command(f"DELETE FROM {VERSION_TABLE} WHERE version = 5")
    rng = random.Random(6)
    before, expected_before = spans_with_events(rng, 20)
    insert_spans(storage, to_columns(before))
    config = settings.storage_config()
    admin = open_client(config, database="")
    try:
        assert migrate(admin, config) == [5]
    finally:
        admin.close()
    after, expected_after = spans_with_events(rng, 20)
    insert_spans(storage, to_columns(after))

    rows = storage.query(
        f"SELECT Type, {EXCEPTION_MESSAGE}, count() FROM {EXCEPTIONS_TABLE} GROUP BY ALL"
    ).result_rows
    types = Counter(row[4] for row in expected_before | expected_after)
    assert sorted(rows) == [(kind, "failed <n>.<n>", n) for kind, n in sorted(types.items())]
