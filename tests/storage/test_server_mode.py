"""The storage tests again, on a ClickHouse server instead of the embedded engine.

Runs when ``OTELHOUSE_TEST_CLICKHOUSE_URL`` names a server (``http://user:pass@host:8123``,
e.g. the compose stack's ClickHouse); each test gets a database of its own there, dropped
afterwards. This module overrides only the ``settings`` fixture (conftest's ``storage``
migrates whatever ``settings`` names), so the embedded suite's migration tests, imported
below, run unchanged through ``otelhouse.storage.open_client`` in server mode.
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest
from clickhouse_connect.driver.client import Client

from otelhouse.settings import Settings
from otelhouse.storage.tables import TRACE_ID_TS_TABLE, TRACES_TABLE
from otelhouse.storage.traces import SpanColumns, insert_spans
from tests.storage import test_migrations

SERVER_URL = os.environ.get("OTELHOUSE_TEST_CLICKHOUSE_URL", "")

pytestmark = pytest.mark.skipif(
    not SERVER_URL,
    reason="server mode not tested: set OTELHOUSE_TEST_CLICKHOUSE_URL=http://user:pass@host:8123 "
    "(e.g. `docker compose up -d clickhouse`)",
)

globals().update({name: test for name, test in vars(test_migrations).items() if name.startswith("test_")})


@pytest.fixture
def settings() -> Settings:
    parts = urlsplit(SERVER_URL)
    database = f"test_{uuid.uuid4().hex[:12]}"
    return Settings(clickhouse_url=urlunsplit(parts._replace(path=f"/{database}")))


def test_server_mode_is_in_force(settings: Settings, storage: Client) -> None:
    assert not settings.embedded
    assert storage.query("SELECT currentDatabase()").result_rows[0][0] == settings.effective_database


def test_spans_round_trip_with_hot_columns(settings: Settings, storage: Client) -> None:
    now_ns = time.time_ns()
    spans = SpanColumns()
    rows = [
        ("a" * 32, "1" * 16, "", "GET /x", "Server", "Unset", {"http.response.status_code": "503"}),
        ("a" * 32, "2" * 16, "1" * 16, "db", "Internal", "Ok", {}),
        ("b" * 32, "3" * 16, "", "job", "Internal", "Error", {"http.status_code": "404"}),
    ]
    for i, (trace, span, parent, name, kind, status, attrs) in enumerate(rows):
        for column, value in (
            ("Timestamp", now_ns + i), ("TraceId", trace), ("SpanId", span), ("ParentSpanId", parent),
            ("TraceState", ""), ("SpanName", name), ("SpanKind", kind), ("ServiceName", "svc"),
            ("ResourceAttributes", {"service.name": "svc"}), ("ScopeName", "s"), ("ScopeVersion", "1"),
            ("SpanAttributes", attrs), ("Duration", 1000 * (i + 1)), ("StatusCode", status),
            ("StatusMessage", ""), ("Events_Timestamp", []), ("Events_Name", []),
            ("Events_Attributes", []), ("Links_TraceId", []), ("Links_SpanId", []),
            ("Links_TraceState", []), ("Links_Attributes", []),
        ):
            getattr(spans, column).append(value)
    insert_spans(storage, spans)
    got = storage.query(
        f"SELECT SpanId, IsRequest, IsError, HttpStatusCode, Duration FROM {TRACES_TABLE} ORDER BY SpanId"
    ).result_rows
    assert got == [("1" * 16, 1, 1, 503, 1000), ("2" * 16, 0, 0, 0, 2000), ("3" * 16, 1, 1, 404, 3000)]
    lookup = storage.query(
        f"SELECT TraceId FROM {TRACE_ID_TS_TABLE} GROUP BY TraceId ORDER BY TraceId"
    ).result_rows
    assert lookup == [("a" * 32,), ("b" * 32,)]


def test_one_client_serves_concurrent_queries(storage: Client) -> None:
    """The query API runs sync routes on worker threads over one client: a client bound to
    one ClickHouse session would answer SESSION_IS_LOCKED here."""
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: storage.query(f"SELECT {n}, sleep(0.2)").result_rows, range(8)))
    assert [rows[0][0] for rows in results] == list(range(8))
