"""``otelhouse serve`` as a user runs it: OTLP/HTTP beside gRPC, ``/metrics`` on the OTLP/HTTP
port, and the receiver's queue in the API's tokenless ``/healthz``."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import httpx

from otelhouse.demo.payloads import realistic_request
from otelhouse.core.addresses import free_port
from tests.serve_process import run_serve, serve_env, start_serve


def wait_for(url: str, timeout_s: float = 60, **kwargs: object) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(url, timeout=5, **kwargs)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_serve_takes_otlp_http_and_reports_queue_and_metrics(tmp_path: Path) -> None:
    http_port, api_port = free_port(), free_port()
    env = serve_env(
        tmp_path / "data",
        otlp_http_addr=f"127.0.0.1:{http_port}",
        api_addr=f"127.0.0.1:{api_port}",
        otlp_tokens="ingest-token",
        api_tokens="read-token",
        queue_max_rows=5000,
        max_inflight_bytes=3_000_000,
    )
    process = start_serve(env)
    auth = {"authorization": "Bearer ingest-token"}
    try:
        health = wait_for(f"http://127.0.0.1:{api_port}/healthz").json()
        assert health["receiver"] == {
            "queued_spans": 0,
            "queue_max_spans": 5000,
            "inflight_bytes": 0,
            "inflight_max_bytes": 3_000_000,
            "spans_stored": 0,
            "queued_log_records": 0,
            "queue_max_log_records": 5000,
            "log_records_stored": 0,
            "queued_data_points": 0,
            "queue_max_data_points": 5000,
            "data_points_stored": 0,
        }
        reply = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/traces",
            content=realistic_request(64).SerializeToString(),
            headers={"content-type": "application/x-protobuf", **auth},
            timeout=30,
        )
        assert reply.status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", headers=auth, timeout=10)
        assert "otelhouse_receiver_spans_received_total 64\n" in metrics.text
        assert "otelhouse_receiver_inflight_bytes 0\n" in metrics.text
        assert "otelhouse_receiver_inflight_max_bytes 3000000\n" in metrics.text
        assert httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).status_code == 401
        health = httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=10).json()
        assert health["status"] == "ok"
        assert health["receiver"]["queued_spans"] == 0
        assert health["receiver"]["spans_stored"] == 64
        assert health["wal"]["drainer"] == "storing"
        assert health["wal"]["max_bytes"] > health["wal"]["log_bytes"] > 0
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"OTLP/HTTP receiver on http://127.0.0.1:{http_port}/v1/traces" in output


def test_serve_refuses_to_start_on_a_taken_otlp_http_port(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_serve(serve_env(tmp_path / "data"), "--otlp-http-addr", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert "cannot listen for OTLP/HTTP" in result.stderr and "--otlp-http-addr" in result.stderr


def test_serve_metrics_include_the_write_ahead_log(tmp_path: Path) -> None:
    http_port = free_port()
    env = serve_env(tmp_path / "data", wal_enabled=True, otlp_http_addr=f"127.0.0.1:{http_port}")
    process = start_serve(env)
    metrics_url = f"http://127.0.0.1:{http_port}/metrics"
    try:
        before = wait_for(metrics_url).text
        assert "otelhouse_wal_appended_spans_total 0\n" in before
        reply = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/traces",
            content=realistic_request(32).SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
            timeout=30,
        )
        assert reply.status_code == 200
        after = httpx.get(metrics_url, timeout=10).text
        assert "otelhouse_wal_appended_spans_total 32\n" in after
        assert "# TYPE otelhouse_wal_drain_lag_seconds gauge" in after
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
