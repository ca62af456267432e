"""kill -9 of a real ``otelhouse serve`` while clients export metrics: after a restart every
acknowledged data point is in its table exactly once (the write-ahead log replays the
batches, each table's insert deduplicated by its own token)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from otelhouse.core.addresses import free_port
from otelhouse.receiver.metric_points import METRICS_SERVICE
from tests.receiver.test_durability import pending_log_bytes, serve_process, wait_until
from tests.serve_process import query_store

CLIENTS = 3
POINTS = 50
TABLES = ("otel_metrics_gauge", "otel_metrics_sum", "otel_metrics_histogram")


def load_request(seed: int) -> bytes:
    """``POINTS`` points of each of gauge, sum and histogram, told apart by their attributes."""
    now = time.time_ns()

    def point(i: int, **values: Any) -> dict[str, Any]:
        return {
            "time_unix_nano": now, "start_time_unix_nano": now - 10**9, **values,
            "attributes": [{"key": "point", "value": {"string_value": f"{seed}/{i}"}}],
        }

    metrics = [
        {"name": "load.gauge", "gauge": {"data_points": [point(i, as_int=i) for i in range(POINTS)]}},
        {"name": "load.sum", "sum": {"aggregation_temporality": 2, "is_monotonic": True,
                                     "data_points": [point(i, as_int=i) for i in range(POINTS)]}},
        {"name": "load.histogram", "histogram": {"aggregation_temporality": 1, "data_points": [
            point(i, count=1, sum=1.0, bucket_counts=[1, 0], explicit_bounds=[2.0])
            for i in range(POINTS)
        ]}},
    ]
    return ExportMetricsServiceRequest(resource_metrics=[{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "load"}}]},
        "scope_metrics": [{"metrics": metrics}],
    }]).SerializeToString()


class MetricsLoad:
    """Threads exporting distinct requests until the server goes away."""

    def __init__(self, port: int) -> None:
        self.acknowledged: list[int] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=(port, n), daemon=True) for n in range(CLIENTS)
        ]
        for thread in self._threads:
            thread.start()

    def _send(self, port: int, seed: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = channel.unary_unary(
                f"/{METRICS_SERVICE}/Export",
                request_serializer=None,
                response_deserializer=ExportMetricsServiceResponse.FromString,
            )
            while True:
                try:
                    export(load_request(seed), timeout=10, wait_for_ready=False)
                except grpc.RpcError:
                    return
                with self._lock:
                    self.acknowledged.append(seed)
                seed += CLIENTS

    def join(self) -> None:
        for thread in self._threads:
            thread.join(30)


def test_kill_9_then_restart_stores_every_acknowledged_point_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    server = serve_process(data_dir, port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        load = MetricsLoad(port)
        wait_until(lambda: len(load.acknowledged) >= 30, 60, "30 acknowledged requests")
        wait_until(lambda: pending_log_bytes(data_dir / "wal") > 0, 10, "an undrained log")
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        load.join()
    finally:
        if server.poll() is None:
            server.kill()
    acknowledged = list(load.acknowledged)

    port = free_port()
    restarted = serve_process(data_dir, port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        restarted.send_signal(signal.SIGTERM)
        output, _ = restarted.communicate(timeout=120)
    finally:
        if restarted.poll() is None:
            restarted.kill()
    assert restarted.returncode == 0, output

    expected = {f"{seed}/{i}" for seed in acknowledged for i in range(POINTS)}
    stored = {
        table: query_store(data_dir, f"SELECT Attributes['point'] FROM otel.{table}")
        for table in TABLES
    }
    lost = {
        table: sorted({point.split("/")[0] for point in expected - set(points)})
        for table, points in stored.items()
    }
    assert lost == {table: [] for table in TABLES}, (sorted(acknowledged), output)
    for table, points in stored.items():
        assert len(points) == len(set(points)), f"a point was stored twice in {table}"
