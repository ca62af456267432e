"""Migration 0006 on the embedded engine: ``otel_logs`` has the exporter's layout, a converted
batch reads back field for field, and a replayed insert is stored once."""

from __future__ import annotations

import time

from clickhouse_connect.driver.client import Client
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otelhouse.receiver.logs import convert_logs_request
from otelhouse.settings import Settings
from otelhouse.storage.tables import LOGS_TABLE
from otelhouse.storage.logs import LOG_COLUMN_NAMES, LogColumns, insert_logs
import pytest

from otelhouse.storage.migrations import applied_versions, has_text_index, load_migrations
from otelhouse.demo.payloads import any_value, kv


def logs_request(now_ns: int) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    rl.resource.attributes.extend(
        [
            kv("service.name", "checkout"),
            kv("k8s.namespace.name", "shop"),
            kv("deployment.environment.name", "prod"),
        ]
    )
    sl = rl.scope_logs.add(schema_url="https://opentelemetry.io/schemas/1.24.0")
    sl.scope.name, sl.scope.version = "checkout.logger", "2.1"
    sl.scope.attributes.append(kv("lib.debug", False))
    bodies = [
        AnyValue(string_value="Card DECLINED for order 4242"),
        any_value({"event": "retry", "attempt": 2}),
        AnyValue(),
    ]
    for i, body in enumerate(bodies):
        sl.log_records.add(
            time_unix_nano=now_ns + i if i != 1 else 0,
            observed_time_unix_nano=now_ns + i,
            severity_number=9 + 4 * i,
            severity_text=("INFO", "WARN", "ERROR")[i],
            body=body,
            flags=i,
            trace_id=bytes([i + 1]) * 16 if i != 2 else b"",
            span_id=bytes([i + 1]) * 8 if i != 2 else b"",
            attributes=[kv("i", i), kv("ratio", i / 4)],
            event_name=f"event.{i}" if i else "",
        )
    rl2 = request.resource_logs.add()
    rl2.scope_logs.add().log_records.add(observed_time_unix_nano=now_ns + 3)
    return request


def read_back(storage: Client) -> list[dict[str, object]]:
    columns = ", ".join(
        "toUnixTimestamp64Nano(Timestamp) AS Timestamp" if name == "Timestamp" else name
        for name in LOG_COLUMN_NAMES
    )
    return list(
        storage.query(f"SELECT {columns} FROM {LOGS_TABLE} ORDER BY Timestamp").named_results()
    )


def test_migrations_up_to_0006_apply_with_0005_absent(settings: Settings, storage: Client) -> None:
    versions = [m.version for m in load_migrations(settings.storage_config())]
    assert versions == sorted(set(versions)) and 6 in versions
    assert applied_versions(storage, settings.effective_database) == set(versions)


def test_a_converted_batch_reads_back_field_for_field(storage: Client) -> None:
    converted = convert_logs_request(logs_request(time.time_ns()))
    assert converted.rejected == 0 and len(converted.logs) == 4
    insert_logs(storage, converted.logs)
    assert read_back(storage) == converted.logs.rows()


def test_materialized_columns_are_computed_by_clickhouse(storage: Client) -> None:
    insert_logs(storage, convert_logs_request(logs_request(time.time_ns())).logs)
    rows = storage.query(
        "SELECT `__otel_materialized_k8s.namespace.name`, "
        "`__otel_materialized_deployment.environment.name`, `__otel_materialized_k8s.pod.name` "
        f"FROM {LOGS_TABLE} ORDER BY Timestamp"
    ).result_rows
    assert rows == [("shop", "prod", "")] * 3 + [("", "", "")]


def test_table_layout_matches_the_exporter(settings: Settings, storage: Client) -> None:
    db = settings.effective_database
    ddl = storage.query(f"SHOW CREATE TABLE {db}.{LOGS_TABLE}").result_rows[0][0]
    assert "PARTITION BY toDate(Timestamp)" in ddl
    assert "ORDER BY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)" in ddl
    assert "TTL toDateTime(Timestamp) + toIntervalDay(30)" in ddl
    assert "INDEX idx_lower_body lower(Body) TYPE text(tokenizer = 'splitByNonAlpha')" in ddl
    for setting in (
        "index_granularity = 8192",
        "ttl_only_drop_parts = 1",
        "non_replicated_deduplication_window = 10000",
    ):
        assert setting in ddl
    written = dict(
        storage.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {table:String} AND default_kind = ''",
            parameters={"db": db, "table": LOGS_TABLE},
        ).result_rows
    )
    assert tuple(written) == LOG_COLUMN_NAMES
    assert written["Timestamp"] == "DateTime64(9)"
    assert written["TraceFlags"] == written["SeverityNumber"] == "UInt8"
    assert written["ScopeVersion"] == "LowCardinality(String)"
    assert written["LogAttributes"] == "Map(LowCardinality(String), String)"
    indexes = dict(
        storage.query(
            "SELECT name, type_full FROM system.data_skipping_indices "
            "WHERE database = {db:String} AND table = {table:String}",
            parameters={"db": db, "table": LOGS_TABLE},
        ).result_rows
    )
    array_indexed = [
        "idx_trace_id",
        "idx_res_attr_key",
        "idx_res_attr_value",
        "idx_scope_attr_key",
        "idx_scope_attr_value",
        "idx_log_attr_key",
        "idx_log_attr_value",
    ]
    assert sorted(indexes) == sorted([*array_indexed, "idx_lower_body"])
    assert all(indexes[name] == "text(tokenizer = 'array')" for name in array_indexed)
    assert indexes["idx_lower_body"] == "text(tokenizer = 'splitByNonAlpha')"


def test_body_search_uses_the_text_index(storage: Client) -> None:
    insert_logs(storage, convert_logs_request(logs_request(time.time_ns())).logs)
    query = f"SELECT count() FROM {LOGS_TABLE} WHERE hasToken(lower(Body), 'declined')"
    assert storage.query(query).result_rows == [(1,)]
    plan = "\n".join(row[0] for row in storage.query(f"EXPLAIN indexes = 1 {query}").result_rows)
    assert "idx_lower_body" in plan


def test_a_replay_with_the_same_deduplication_token_stores_nothing_new(storage: Client) -> None:
    batch = convert_logs_request(logs_request(time.time_ns())).logs
    insert_logs(storage, batch, settings={"insert_deduplication_token": "wal-1"})
    insert_logs(storage, batch, settings={"insert_deduplication_token": "wal-1"})
    assert storage.query(f"SELECT count() FROM {LOGS_TABLE}").result_rows == [(len(batch),)]
    insert_logs(storage, batch, settings={"insert_deduplication_token": "wal-2"})
    assert storage.query(f"SELECT count() FROM {LOGS_TABLE}").result_rows == [(2 * len(batch),)]


def test_an_empty_batch_is_not_inserted(storage: Client) -> None:
    insert_logs(storage, LogColumns())
    assert storage.query(f"SELECT count() FROM {LOGS_TABLE}").result_rows == [(0,)]


@pytest.mark.parametrize(
    ("version", "expected"),
    [("26.9.2.1", True), ("26.2.1.5", True), ("26.1.3.1", False), ("25.8.26.11", False),
     ("18.16.1", False)],
)
def test_text_indexes_are_used_from_clickhouse_26_2(version: str, expected: bool) -> None:
    assert has_text_index(version) is expected


def test_older_servers_get_the_exporters_bloom_filter_indexes(
    settings: Settings, storage: Client
) -> None:
    """The fallback DDL is valid on the engine and indexes the same expressions."""
    config = settings.storage_config()
    (logs,) = [m for m in load_migrations(config, text_index=False) if m.name == "logs"]
    fallback = logs.statements[0].replace(".otel_logs", ".otel_logs_fallback", 1)
    storage.command(fallback)
    indexes = dict(
        storage.query(
            "SELECT name, type_full FROM system.data_skipping_indices "
            "WHERE database = {db:String} AND table = 'otel_logs_fallback'",
            parameters={"db": config.database},
        ).result_rows
    )
    assert indexes.pop("idx_trace_id") == "bloom_filter(0.001)"
    assert indexes.pop("idx_lower_body") == "tokenbf_v1(32768, 3, 0)"
    assert set(indexes.values()) == {"bloom_filter(0.01)"} and len(indexes) == 6
