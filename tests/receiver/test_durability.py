"""Nothing acknowledged is lost or doubled: storage outages longer than the SDK's retry
window, a full log, a crash between insert and checkpoint, and kill -9 of ``otelhouse serve``
under load, all against the real embedded engine."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from clickhouse_connect.driver.client import Client
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelhouse.settings import Settings
from otelhouse.receiver.convert import convert_request
from otelhouse.receiver.logs import LOGS
from otelhouse.receiver.traces import TRACE_SERVICE, TRACES
from otelhouse.receiver.wal import Drainer, Insert, WalService, WriteAheadLog
from otelhouse.receiver.wal.records import SEGMENT_HEADER
from otelhouse.storage import open_client
from otelhouse.storage.traces import SpanColumns, insert_spans
from tests.conftest import ReceiverThread
from otelhouse.demo.payloads import realistic_request
from otelhouse.core.addresses import free_port
from tests.serve_process import query_store, run_serve, serve_env, start_serve

SDK_TIMEOUT_S = 2.0
"""The exporters' deadline: the SDK retries UNAVAILABLE only within it, then drops the spans."""


def token_insert(client: Client) -> Insert:
    def insert(spans: SpanColumns, token: str) -> None:
        insert_spans(client, spans, settings={"insert_deduplication_token": token})

    return insert


def stored_span_ids(client: Client) -> list[str]:
    return [row[0] for row in client.query("SELECT SpanId FROM otel_traces").result_rows]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def logged_receiver(
    settings: Settings, start_receiver: Callable[..., ReceiverThread], tmp_path: Path
) -> Iterator[Callable[..., tuple[ReceiverThread, WalService]]]:
    """Factory: a real receiver whose sink is a write-ahead log draining into this test's
    database, the way ``otelhouse serve`` wires them."""
    writer = open_client(settings.storage_config())
    services: list[WalService] = []

    def start(**wal_settings: object) -> tuple[ReceiverThread, WalService]:
        effective = settings.model_copy(update={"wal_dir": tmp_path / "wal", **wal_settings})
        service = WalService.open(effective.wal_config(), {TRACES: token_insert(writer)}, max_backoff_s=0.3)
        services.append(service)
        return start_receiver(sink=service.sink(TRACES)), service

    yield start
    for service in services:
        service.close(drain_timeout_s=0)
    writer.close()


def sdk_spans(count: int, service: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("durability")
    for i in range(count):
        with tracer.start_as_current_span(f"op-{i % 7}"):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def sdk_exporter(receiver: ReceiverThread) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=receiver.endpoint, insecure=True, timeout=SDK_TIMEOUT_S)


def span_hex_ids(spans: list[ReadableSpan]) -> set[str]:
    return {format(span.context.span_id, "016x") for span in spans}


def test_repeated_token_is_stored_once_in_traces_and_lookup(storage: Client) -> None:
    storage.command("SYSTEM STOP MERGES otel_traces_trace_id_ts")
    spans = convert_request(realistic_request(200, seed=3)).spans
    for token in ("range-a", "range-a", "range-b"):
        insert_spans(storage, spans, settings={"insert_deduplication_token": token})
    traces = storage.query("SELECT count() FROM otel_traces").result_rows[0][0]
    lookup = storage.query("SELECT count() FROM otel_traces_trace_id_ts").result_rows[0][0]
    assert traces == 2 * len(spans)
    assert lookup == 2 * len(set(spans.TraceId))


def test_outage_longer_than_the_sdk_retry_window_loses_nothing(
    settings: Settings,
    storage: Client,
    start_receiver: Callable[..., ReceiverThread],
    logged_receiver: Callable[..., tuple[ReceiverThread, WalService]],
) -> None:
    direct = start_receiver()
    logged, service = logged_receiver()
    refused = sdk_spans(50, "direct")
    accepted = [sdk_spans(100, f"logged-{n}") for n in range(4)]

    storage.command("DETACH TABLE otel_traces")
    outage_started = time.monotonic()
    assert sdk_exporter(direct).export(refused) is SpanExportResult.FAILURE
    logged_exporter = sdk_exporter(logged)
    for batch in accepted:
        assert logged_exporter.export(batch) is SpanExportResult.SUCCESS
    time.sleep(max(0.0, outage_started + SDK_TIMEOUT_S + 1.0 - time.monotonic()))
    during = service.stats()
    storage.command("ATTACH TABLE otel_traces")

    assert during.log.pending_rows == 400 and during.drain.insert_failures > 0
    wait_until(lambda: service.stats().log.pending_rows == 0, 30, "the log to drain")
    stored = stored_span_ids(storage)
    assert len(stored) == len(set(stored))
    assert set(stored) == set().union(*map(span_hex_ids, accepted))
    assert service.stats().log.drain_lag_s == 0.0


def test_full_log_answers_unavailable_with_retry_info_and_recovers(
    storage: Client, logged_receiver: Callable[..., tuple[ReceiverThread, WalService]]
) -> None:
    payloads = [realistic_request(100, seed=seed).SerializeToString() for seed in range(12)]
    receiver, service = logged_receiver(wal_max_bytes=len(payloads[0]) * 6)
    storage.command("DETACH TABLE otel_traces")
    acknowledged: list[int] = []
    with grpc.insecure_channel(receiver.endpoint) as channel:
        export = channel.unary_unary(
            f"/{TRACE_SERVICE}/Export",
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        refusal: grpc.RpcError | None = None
        for seed, payload in enumerate(payloads):
            try:
                export(payload, timeout=10)
                acknowledged.append(seed)
            except grpc.RpcError as exc:
                refusal = exc
                break
        assert refusal is not None and refusal.code() is grpc.StatusCode.UNAVAILABLE
        assert "write-ahead log full" in refusal.details()
        trailers = dict(refusal.trailing_metadata())
        assert RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay.ToTimedelta()
        assert service.stats().log.refused_appends >= 1

        storage.command("ATTACH TABLE otel_traces")
        wait_until(lambda: service.stats().log.pending_rows == 0, 30, "the log to drain")
        export(payloads[-1], timeout=10)
        acknowledged.append(len(payloads) - 1)
    wait_until(lambda: service.stats().log.pending_rows == 0, 30, "the last request to drain")
    expected = {
        span_id
        for seed in acknowledged
        for span_id in convert_request(realistic_request(100, seed=seed)).spans.SpanId
    }
    stored = stored_span_ids(storage)
    assert len(stored) == len(set(stored)) and set(stored) == expected


def test_crash_between_insert_and_checkpoint_stores_once(
    settings: Settings, storage: Client, tmp_path: Path
) -> None:
    """Forced at the log level: the batch is inserted, the process dies before the checkpoint
    moves, more spans arrive in the log, and the restarted drainer replays."""
    options = {"signals": (TRACES,), "max_bytes": 64 * 1024**2, "segment_bytes": 16 * 1024**2, "cache_rows": 10_000}
    batches = [convert_request(realistic_request(150, seed=seed)).spans for seed in range(3)]
    insert = token_insert(storage)
    wal = WriteAheadLog(tmp_path / "wal", **options)
    wal.append(TRACES, batches[0])
    wal.append(TRACES, batches[1])
    inflight = wal.next_batch(10_000, timeout_s=0)
    assert inflight is not None and inflight.rows == 300
    wal.begin(inflight)
    insert(inflight.columns, inflight.token)
    wal.append(TRACES, batches[2])
    wal.close()

    with WriteAheadLog(tmp_path / "wal", **options) as restarted:
        drainer = Drainer(restarted, {TRACES: insert}, max_rows=10_000)
        drainer.start()
        assert drainer.stop(timeout_s=30)
    stored = stored_span_ids(storage)
    assert len(stored) == len(set(stored))
    assert set(stored) == {span_id for spans in batches for span_id in spans.SpanId}


# kill -9 of a real ``otelhouse serve``

SPANS_PER_REQUEST = 256
RECORDS_PER_REQUEST = 256
CLIENTS = 4


def serve_process(data_dir: Path, grpc_port: int, **settings: object) -> subprocess.Popen[str]:
    env = serve_env(
        data_dir,
        otlp_grpc_addr=f"127.0.0.1:{grpc_port}",
        batch_max_rows=2048,
        batch_max_delay_ms=10,
        wal_drain_timeout_s=60,
        **settings,
    )
    return start_serve(env)


def pending_log_bytes(wal_dir: Path) -> int:
    """Bytes past the checkpoint, read from the files as a restart would see them."""
    checkpoint = json.loads((wal_dir / "checkpoint.json").read_text())
    total = 0
    for segment in wal_dir.glob("*.wal"):
        with contextlib.suppress(FileNotFoundError):
            number, size = int(segment.stem), segment.stat().st_size
            if number == checkpoint["segment"]:
                total += size - checkpoint["offset"]
            elif number > checkpoint["segment"]:
                total += size - SEGMENT_HEADER.size
    return total


Send = Callable[[int], object]
"""Sends request number ``seed``; raises once the server is gone."""


@contextlib.contextmanager
def grpc_sender(port: int, method: str, payload: Callable[[int], bytes]) -> Iterator[Send]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        yield lambda seed: export(payload(seed), timeout=10, wait_for_ready=False)


class LoadClients:
    """Threads sending distinct requests (seed = request id, from ``first_seed``) until the
    server goes away, recording which ones were acknowledged."""

    def __init__(
        self,
        connect: Callable[[], contextlib.AbstractContextManager[Send]],
        gone: tuple[type[Exception], ...] = (grpc.RpcError,),
        first_seed: int = 0,
    ) -> None:
        self.acknowledged: list[int] = []
        self._lock = threading.Lock()
        self._connect, self._gone = connect, gone
        self._threads = [
            threading.Thread(target=self._send, args=(first_seed + n,), daemon=True)
            for n in range(CLIENTS)
        ]
        for thread in self._threads:
            thread.start()

    def _send(self, first_seed: int) -> None:
        with self._connect() as send:
            seed = first_seed
            while True:
                try:
                    send(seed)
                except self._gone:
                    return
                with self._lock:
                    self.acknowledged.append(seed)
                seed += CLIENTS

    def join(self) -> None:
        for thread in self._threads:
            thread.join(30)


def kill_under_load_then_restart(
    data_dir: Path, start: Callable[[int], subprocess.Popen[str]], load: Callable[[int], list[LoadClients]]
) -> None:
    """``start(grpc_port)`` a server, ``load`` it until each client set has 40 acknowledged
    requests and the log holds undrained ones, kill -9 it, then restart it on the same data
    directory and stop it once it has replayed the log."""
    port = free_port()
    server = start(port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        clients = load(port)
        for each in clients:
            wait_until(lambda: len(each.acknowledged) >= 40, 60, "40 acknowledged requests")
        wait_until(lambda: pending_log_bytes(data_dir / "wal") > 0, 10, "an undrained log")
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        for each in clients:
            each.join()
    finally:
        if server.poll() is None:
            server.kill()

    port = free_port()
    restarted = start(port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        restarted.send_signal(signal.SIGTERM)
        output, _ = restarted.communicate(timeout=120)
    finally:
        if restarted.poll() is None:
            restarted.kill()
    assert restarted.returncode == 0, output
    assert "replaying" in output, output


def test_kill_9_under_load_then_restart_stores_every_acknowledged_span_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    span_clients: list[LoadClients] = []

    def payload(seed: int) -> bytes:
        return realistic_request(SPANS_PER_REQUEST, seed=seed).SerializeToString()

    def load(port: int) -> list[LoadClients]:
        span_clients.append(
            LoadClients(lambda: grpc_sender(port, f"/{TRACE_SERVICE}/Export", payload))
        )
        return span_clients

    kill_under_load_then_restart(data_dir, lambda port: serve_process(data_dir, port), load)
    acknowledged = list(span_clients[0].acknowledged)

    stored = query_store(data_dir, "SELECT SpanId FROM otel.otel_traces")
    assert len(stored) == len(set(stored)), "a span was stored twice"
    expected = {
        span_id
        for seed in acknowledged
        for span_id in convert_request(realistic_request(SPANS_PER_REQUEST, seed=seed)).spans.SpanId
    }
    assert expected <= set(stored), f"{len(expected - set(stored))} acknowledged spans lost"


def otlp_logs_payload(seed: int) -> bytes:
    """A logs request whose records' bodies (``otlp-<seed>-<n>``) name it."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "kill-otlp"
    records = resource_logs.scope_logs.add().log_records
    now = time.time_ns()
    for n in range(RECORDS_PER_REQUEST):
        record = records.add(time_unix_nano=now, severity_number=9, severity_text="INFO")
        record.body.string_value = f"otlp-{seed}-{n}"
        record.attributes.add(key="n").value.int_value = n
    return request.SerializeToString()


@contextlib.contextmanager
def json_logs_sender(api_port: int) -> Iterator[Send]:
    """Posts NDJSON batches whose records' messages (``json-<seed>-<n>``) name them."""
    with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as client:

        def send(seed: int) -> None:
            lines = (
                json.dumps({"message": f"json-{seed}-{n}", "level": "warn", "service": "kill-json"})
                for n in range(RECORDS_PER_REQUEST)
            )
            reply = client.post(
                "/api/v1/logs",
                content="\n".join(lines).encode(),
                headers={"content-type": "application/x-ndjson"},
            )
            reply.raise_for_status()
            assert reply.json()["accepted"] == RECORDS_PER_REQUEST

        yield send


def test_kill_9_under_load_then_restart_stores_every_acknowledged_log_record_once(
    tmp_path: Path,
) -> None:
    """OTLP logs over gRPC and JSON logs on the API's port, at once: both are acknowledged
    only once the write-ahead log holds them."""
    data_dir = tmp_path / "data"
    api_port = free_port()
    clients: list[LoadClients] = []

    def load(port: int) -> list[LoadClients]:
        wait_until(lambda: api_is_up(api_port), 60, "the API")
        clients.append(LoadClients(lambda: grpc_sender(port, LOGS.grpc_method, otlp_logs_payload)))
        clients.append(
            LoadClients(lambda: json_logs_sender(api_port), gone=(httpx.HTTPError,))
        )
        return clients

    kill_under_load_then_restart(
        data_dir,
        lambda port: serve_process(data_dir, port, api_addr=f"127.0.0.1:{api_port}"),
        load,
    )
    expected = {
        f"{kind}-{seed}-{n}"
        for kind, each in zip(("otlp", "json"), clients)
        for seed in each.acknowledged
        for n in range(RECORDS_PER_REQUEST)
    }

    stored = query_store(data_dir, "SELECT Body FROM otel.otel_logs")
    assert len(stored) == len(set(stored)), "a log record was stored twice"
    assert expected <= set(stored), f"{len(expected - set(stored))} acknowledged records lost"


def api_is_up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def test_serve_refuses_a_log_another_process_holds(tmp_path: Path) -> None:
    wal_dir = tmp_path / "shared-wal"
    with WriteAheadLog(wal_dir, signals=(TRACES,), max_bytes=1024**2, segment_bytes=256 * 1024, cache_rows=10):
        result = run_serve(serve_env(tmp_path / "data"), "--wal-dir", str(wal_dir))
    assert result.returncode == 1
    assert "open in another otelhouse process" in result.stderr, result.stderr
