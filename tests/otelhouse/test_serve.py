"""``otelhouse serve`` as a user runs it: a subprocess with its own data directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelhouse.cli import SERVE_SETTINGS, build_parser
from receiver.grpc_service import TRACE_SERVICE
from tests.payloads import realistic_request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for name in SERVE_SETTINGS:
        assert f"--{name.replace('_', '-')}" in text
        assert f"OTELHOUSE_{name.upper()}" in text


def test_invalid_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otelhouse.cli", "serve", "--otlp-grpc-addr", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OTELHOUSE_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "invalid setting" in result.stderr and "otlp_grpc_addr" in result.stderr


def _count_rows(data_dir: Path) -> int:
    """Read the store from a fresh process: chdb allows one data directory per process."""
    code = (
        "import clickhouse_connect, sys;"
        "c = clickhouse_connect.get_client(interface='chdb', path=sys.argv[1]);"
        "print(c.query('SELECT count() FROM otel.otel_traces').result_rows[0][0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_serve_stores_spans_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    grpc_port = free_port()
    env = {
        **os.environ,
        "OTELHOUSE_DATA_DIR": str(tmp_path / "data"),
        "OTELHOUSE_OTLP_GRPC_ADDR": "127.0.0.1:1",
        "OTELHOUSE_API_ADDR": f"127.0.0.1:{free_port()}",
        "OTELHOUSE_OTLP_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "OTELHOUSE_BATCH_MAX_DELAY_MS": "5000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "otelhouse.cli", "serve", "--otlp-grpc-addr", f"127.0.0.1:{grpc_port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            export = channel.unary_unary(
                f"/{TRACE_SERVICE}/Export",
                request_serializer=None,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
            future = export.future(realistic_request(100).SerializeToString(), timeout=30)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            assert not future.result().HasField("partial_success")
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "shutting down" in output
    assert _count_rows(tmp_path / "data") == 100
