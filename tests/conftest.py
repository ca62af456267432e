"""Fixtures that start real components: the embedded ClickHouse engine, real gRPC and
OTLP/HTTP receivers on free loopback ports (on one event loop, as ``otelhouse serve`` runs
them).

chdb serves one data directory per process, so the session shares one temporary directory
and each test gets a database of its own in it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from otelhouse.core.asgi import HostedUvicorn
from otelhouse.query.app import create_app
from otelhouse.settings import Settings
from otelhouse.receiver.batcher import Sink
from otelhouse.receiver.http_service import OtlpHttpReceiver
from otelhouse.receiver.json_logs import json_logs_router
from otelhouse.receiver.pipeline import Receiver, SignalPipeline
from otelhouse.receiver.server import GrpcReceiver
from otelhouse.receiver.logs import LOGS
from otelhouse.receiver.signal import Signal
from otelhouse.receiver.traces import TRACES
from otelhouse.serve import SIGNALS
from otelhouse.storage import migrate, open_client
from otelhouse.storage.tables import LOGS_TABLE, SERVICE_EDGES_VIEW, TRACES_TABLE
from tests.receiver.http_harness import HttpReceiver

STORED_SPAN_COLUMNS = (
    "TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, StatusCode, "
    "StatusMessage, SpanAttributes, ResourceAttributes, HttpMethod, HttpRoute, "
    "HttpStatusCode, ClientAddress, `Events.Name` AS EventNames, "
    "`Events.Attributes` AS EventAttributes"
)
STORED_LOG_COLUMNS = (
    "toUnixTimestamp64Nano(Timestamp) AS TimestampNs, TraceId, SpanId, SeverityText, "
    "SeverityNumber, ServiceName, Body, ResourceAttributes, ScopeName, LogAttributes"
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("otelhouse-data")


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database=f"test_{uuid.uuid4().hex[:12]}",
        otlp_grpc_addr="127.0.0.1:0",
        api_addr="127.0.0.1:0",
        batch_max_delay_ms=20,
        stats_interval_s=3600,
    )


@pytest.fixture
def storage(settings: Settings) -> Iterator[Client]:
    """A client on a freshly migrated database of this test's own. The service map's
    rollup view is stopped: its minute-by-minute refresh would run queries on the tables at
    moments no test chooses (tests that need it start it, tests/query/cross_service.py)."""
    config = settings.storage_config()
    admin = open_client(config, database="")
    migrate(admin, config)
    client = open_client(config)
    client.command(f"SYSTEM STOP VIEW {SERVICE_EDGES_VIEW}")
    yield client
    client.close()
    admin.command(f"DROP DATABASE IF EXISTS {settings.effective_database} SYNC")
    admin.close()


class ReceiverThread:
    """A ``Receiver`` of every signal ``serve`` takes and its gRPC server on their own event
    loop in a background thread, the way ``otelhouse serve`` runs them, so synchronous SDK
    exporters can talk to it."""

    def __init__(self, settings: Settings, sinks: Mapping[Signal[Any, Any], Sink]) -> None:
        self.loop = asyncio.new_event_loop()
        self.receiver = Receiver(settings.receiver_config(), sinks)
        self.grpc = GrpcReceiver(self.receiver)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self.call(self._start())

    async def _start(self) -> int:
        self.receiver.start()
        return await self.grpc.start()

    @property
    def traces(self) -> SignalPipeline[Any, Any]:
        return self.receiver.pipeline(TRACES.name)

    @property
    def logs(self) -> SignalPipeline[Any, Any]:
        return self.receiver.pipeline(LOGS.name)

    async def _stop(self) -> None:
        await asyncio.gather(self.grpc.stop(grace_s=2), self.receiver.stop())

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def call(self, coro):  # noqa: ANN001, ANN201 - any coroutine, its result
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def start_receiver(settings: Settings, storage: Client) -> Iterator[Callable[..., ReceiverThread]]:
    """Factory: ``start_receiver()`` stores every signal into this test's database; a custom
    span sink (``sink``) or settings changes can be passed."""
    started: list[ReceiverThread] = []
    writer = open_client(settings.storage_config())

    def store(signal: Signal[Any, Any]) -> Sink:
        return lambda columns: signal.insert(writer, columns)

    def start(sink: Sink | None = None, **changes: object) -> ReceiverThread:
        effective = settings.model_copy(update=changes)
        sinks = {signal: store(signal) for signal in SIGNALS}
        if sink is not None:
            sinks[TRACES] = sink
        thread = ReceiverThread(effective, sinks)
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()
    writer.close()


@pytest.fixture
def receiver(start_receiver: Callable[..., ReceiverThread]) -> ReceiverThread:
    return start_receiver()


@pytest.fixture
def start_http_receiver(
    start_receiver: Callable[..., ReceiverThread],
) -> Iterator[Callable[..., HttpReceiver]]:
    """Factory like ``start_receiver``: gRPC and HTTP servers sharing one ``Receiver``."""
    started: list[HttpReceiver] = []

    def start(sink: Sink | None = None, **changes: object) -> HttpReceiver:
        thread = start_receiver(sink, otlp_http_addr="127.0.0.1:0", **changes)
        http = OtlpHttpReceiver(thread.receiver)
        thread.call(http.start())
        handle = HttpReceiver(thread, http, tls=thread.receiver.config.tls_cert_file is not None)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.thread.call(handle.http.stop())


@pytest.fixture
def http_receiver(start_http_receiver: Callable[..., HttpReceiver]) -> HttpReceiver:
    return start_http_receiver()


class IngestApi:
    """The query API with the receiver's JSON log intake mounted, served by uvicorn on the
    receiver's event loop, as ``otelhouse serve`` composes them."""

    def __init__(self, thread: ReceiverThread, settings: Settings) -> None:
        self.thread = thread
        router = json_logs_router(thread.logs, max_request_bytes=settings.max_request_bytes)
        app = create_app(
            settings.api_config(), settings.storage_config(), ingest_routers=[router]
        )
        self.server = HostedUvicorn(app, "127.0.0.1:0", access_log=False)
        self.url = f"http://127.0.0.1:{thread.call(self.server.start())}"

    def stop(self) -> None:
        self.thread.call(self.server.stop())


@pytest.fixture
def start_ingest_api(
    settings: Settings, start_receiver: Callable[..., ReceiverThread]
) -> Iterator[Callable[..., IngestApi]]:
    """Factory: ``start_ingest_api(**changes)`` starts a receiver (as ``start_receiver``)
    and the API that submits JSON logs to its logs pipeline."""
    started: list[IngestApi] = []

    def start(**changes: object) -> IngestApi:
        api = IngestApi(start_receiver(**changes), settings.model_copy(update=changes))
        started.append(api)
        return api

    yield start
    for api in started:
        api.stop()


@pytest.fixture
def stored(storage: Client) -> Callable[..., list[dict[str, Any]]]:
    """``stored(where, **params)``: the matching span rows, oldest first. No waiting: the
    receiver acknowledges an export only once it is stored, so after a successful flush
    (``handle.shutdown()`` is True) every span is there."""

    def fetch(where: str = "1", **parameters: Any) -> list[dict[str, Any]]:
        sql = f"SELECT {STORED_SPAN_COLUMNS} FROM {TRACES_TABLE} WHERE {where} ORDER BY Timestamp"
        return list(storage.query(sql, parameters=parameters).named_results())

    return fetch


@pytest.fixture
def stored_logs(storage: Client) -> Callable[..., list[dict[str, Any]]]:
    """``stored_logs(where, **params)``: the matching ``otel_logs`` rows, oldest first; like
    ``stored``, complete once a flush of the exporting side returned True."""

    def fetch(where: str = "1", **parameters: Any) -> list[dict[str, Any]]:
        sql = f"SELECT {STORED_LOG_COLUMNS} FROM {LOGS_TABLE} WHERE {where} ORDER BY Timestamp"
        return list(storage.query(sql, parameters=parameters).named_results())

    return fetch


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test whose fixtures reach the embedded engine's data directory is an
    integration test; so ``-m 'not integration'`` leaves only the fast unit tests."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
