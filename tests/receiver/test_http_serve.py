"""``otelhouse serve`` as a user runs it: OTLP/HTTP beside gRPC, ``/metrics`` on the OTLP/HTTP
port, and the receiver's queue in the API's tokenless ``/healthz``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.otelhouse.test_serve import free_port
from tests.payloads import realistic_request


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
    env = {
        **os.environ,
        "OTELHOUSE_DATA_DIR": str(tmp_path / "data"),
        "OTELHOUSE_OTLP_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "OTELHOUSE_OTLP_HTTP_ADDR": f"127.0.0.1:{http_port}",
        "OTELHOUSE_API_ADDR": f"127.0.0.1:{api_port}",
        "OTELHOUSE_OTLP_TOKENS": "ingest-token",
        "OTELHOUSE_API_TOKENS": "read-token",
        "OTELHOUSE_QUEUE_MAX_ROWS": "5000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "otelhouse.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    auth = {"authorization": "Bearer ingest-token"}
    try:
        health = wait_for(f"http://127.0.0.1:{api_port}/healthz").json()
        assert health["receiver"] == {"queued_spans": 0, "queue_max_spans": 5000, "spans_stored": 0}
        reply = httpx.post(
            f"http://127.0.0.1:{http_port}/v1/traces",
            content=realistic_request(64).SerializeToString(),
            headers={"content-type": "application/x-protobuf", **auth},
            timeout=30,
        )
        assert reply.status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", headers=auth, timeout=10)
        assert "otelhouse_receiver_spans_received_total 64\n" in metrics.text
        assert httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).status_code == 401
        health = httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=10).json()
        assert health["status"] == "ok"
        assert health["receiver"]["queued_spans"] == 0
        assert health["receiver"]["spans_stored"] == 64
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"OTLP/HTTP receiver on http://127.0.0.1:{http_port}/v1/traces" in output


def test_serve_refuses_to_start_on_a_taken_otlp_http_port(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable, "-m", "otelhouse.cli", "serve",
                "--otlp-http-addr", f"127.0.0.1:{port}",
                "--otlp-grpc-addr", f"127.0.0.1:{free_port()}",
                "--api-addr", f"127.0.0.1:{free_port()}",
                "--data-dir", str(tmp_path / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "cannot listen for OTLP/HTTP" in result.stderr and "--otlp-http-addr" in result.stderr


def test_serve_metrics_include_the_write_ahead_log(tmp_path: Path) -> None:
    http_port = free_port()
    env = {
        **os.environ,
        "OTELHOUSE_DATA_DIR": str(tmp_path / "data"),
        "OTELHOUSE_WAL_ENABLED": "true",
        "OTELHOUSE_OTLP_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "OTELHOUSE_OTLP_HTTP_ADDR": f"127.0.0.1:{http_port}",
        "OTELHOUSE_API_ADDR": f"127.0.0.1:{free_port()}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "otelhouse.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
