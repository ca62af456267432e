from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from otelhouse.settings import Settings
from otelhouse.storage import StorageConfig, StorageUnavailable, migrate, open_client, tables
from otelhouse.storage.migrations import applied_versions, load_migrations
from otelhouse.storage.tables import TRACES_TABLE, VERSION_TABLE
from otelhouse.storage.traces import insert_spans
from tests.query.trace_builder import SpanSpec, to_columns


def test_migrations_apply_once_and_record_versions(settings: Settings, storage: Client) -> None:
    db = settings.effective_database
    config = settings.storage_config()
    expected = {m.version for m in load_migrations(config)}
    assert applied_versions(storage, db) == expected
    admin = open_client(config, database="")
    try:
        assert migrate(admin, config) == []
    finally:
        admin.close()
    rows = storage.query(f"SELECT count() FROM {db}.{VERSION_TABLE}").result_rows
    assert rows[0][0] == len(expected)


def test_tables_match_collector_schema(settings: Settings, storage: Client) -> None:
    columns = dict(
        storage.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {table:String} AND default_kind = ''",
            parameters={"db": settings.effective_database, "table": TRACES_TABLE},
        ).result_rows
    )
    assert columns == {
        "Timestamp": "DateTime64(9)",
        "TraceId": "String",
        "SpanId": "String",
        "ParentSpanId": "String",
        "TraceState": "String",
        "SpanName": "LowCardinality(String)",
        "SpanKind": "LowCardinality(String)",
        "ServiceName": "LowCardinality(String)",
        "ResourceAttributes": "Map(LowCardinality(String), String)",
        "ScopeName": "String",
        "ScopeVersion": "String",
        "SpanAttributes": "Map(LowCardinality(String), String)",
        "Duration": "UInt64",
        "StatusCode": "LowCardinality(String)",
        "StatusMessage": "String",
        "Events.Timestamp": "Array(DateTime64(9))",
        "Events.Name": "Array(LowCardinality(String))",
        "Events.Attributes": "Array(Map(LowCardinality(String), String))",
        "Links.TraceId": "Array(String)",
        "Links.SpanId": "Array(String)",
        "Links.TraceState": "Array(String)",
        "Links.Attributes": "Array(Map(LowCardinality(String), String))",
    }
    engine = storage.query(
        "SELECT sorting_key, partition_key, engine_full FROM system.tables "
        "WHERE database = {db:String} AND name = {table:String}",
        parameters={"db": settings.effective_database, "table": TRACES_TABLE},
    ).result_rows[0]
    assert engine[0] == "ServiceName, SpanName, toDateTime(Timestamp)"
    assert engine[1] == "toDate(Timestamp)"
    assert "toIntervalDay(30)" in engine[2] and "ttl_only_drop_parts = 1" in engine[2]
    indexes = dict(
        storage.query(
            "SELECT name, type_full FROM system.data_skipping_indices "
            "WHERE database = {db:String} AND table = {table:String}",
            parameters={"db": settings.effective_database, "table": TRACES_TABLE},
        ).result_rows
    )
    assert indexes["idx_trace_id"] == "bloom_filter(0.001)"
    assert indexes["idx_span_attr_value"] == "bloom_filter(0.01)"
    assert indexes["idx_duration"] == "minmax"


def test_unreachable_server_error_names_the_server_without_its_password() -> None:
    settings = Settings(clickhouse_url="http://otel:s3cret@127.0.0.1:1/otel")
    with pytest.raises(StorageUnavailable) as caught:
        open_client(settings.storage_config())
    assert "http://otel:***@127.0.0.1:1/otel" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_the_table_names_module_names_every_table_and_view_the_migrations_create(
    settings: Settings, storage: Client
) -> None:
    names = storage.query(
        "SELECT name FROM system.tables WHERE database = {db:String}",
        parameters={"db": settings.effective_database},
    ).result_rows
    assert sorted(row[0] for row in names) == sorted(tables.ALL)


def test_entry_span_rule_is_rematerialised_in_parts_stored_before_0008(data_dir: Path) -> None:
    """A store migrated up to 0007 holds spans computed with the old request rule (Server or
    root); 0008 rewrites them, so a Consumer span stored earlier becomes a request too."""
    config = StorageConfig(data_dir=data_dir, database=f"test_{uuid.uuid4().hex[:12]}")
    admin = open_client(config, database="")
    try:
        admin.command(f"CREATE DATABASE {config.database}")
        admin.command(
            f"CREATE TABLE {config.database}.{VERSION_TABLE} (version UInt32, name String, "
            "applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
        )
        for migration in load_migrations(config):
            if migration.version >= 8:
                continue
            for statement in migration.statements:
                admin.command(statement)
            admin.insert(VERSION_TABLE, [[migration.version, migration.name]],
                         column_names=["version", "name"], database=config.database)
        client = open_client(config)
        consumer = SpanSpec("a" * 32, "1" * 16, "2" * 16, "process", "audit", "Consumer", 10**18, 5)
        client_call = SpanSpec("a" * 32, "2" * 16, "", "publish", "shop", "Producer", 10**18, 9,
                               attributes={"peer.service": "kafka"})
        client_call.start_ns = consumer.start_ns = time.time_ns()
        insert_spans(client, to_columns([consumer, client_call]))
        query = f"SELECT SpanName, IsRequest FROM {TRACES_TABLE} ORDER BY SpanName"
        assert client.query(query).result_rows == [("process", 0), ("publish", 1)]
        later = [m.version for m in load_migrations(config) if m.version >= 8]
        assert migrate(admin, config) == later
        assert client.query(query).result_rows == [("process", 1), ("publish", 1)]
        peers = client.query(f"SELECT PeerService FROM {TRACES_TABLE} ORDER BY SpanName")
        assert peers.result_rows == [("",), ("kafka",)]
        client.close()
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {config.database} SYNC")
        admin.close()
