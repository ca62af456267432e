"""``otelhouse serve`` as a user runs it: a subprocess with its own data directory."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otelhouse.cli import SERVE_SETTINGS, build_parser
from otelhouse.receiver.traces import TRACE_SERVICE
from otelhouse.demo.payloads import realistic_request
from otelhouse.core.addresses import free_port
from tests.serve_process import query_store, run_serve, serve_env, start_serve


def test_serve_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for name in SERVE_SETTINGS:
        assert f"--{name.replace('_', '-')}" in text
        assert f"OTELHOUSE_{name.upper()}" in text


def test_invalid_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = run_serve(serve_env(tmp_path), "--otlp-grpc-addr", "nowhere")
    assert result.returncode != 0
    assert "invalid setting" in result.stderr and "otlp_grpc_addr" in result.stderr


def wait_until_received(http_addr: str, spans: int, timeout_s: float = 30) -> None:
    """Until the receiver's ``/metrics`` counts ``spans`` received: the request is in its
    batch, not still on its way, however busy the machine is."""
    expected = f"otelhouse_receiver_spans_received_total {spans}\n"
    deadline = time.monotonic() + timeout_s
    while expected not in httpx.get(f"http://{http_addr}/metrics", timeout=10).text:
        assert time.monotonic() < deadline, f"the receiver did not count {spans} spans"
        time.sleep(0.05)


def test_serve_stores_spans_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    grpc_port = free_port()
    env = serve_env(tmp_path / "data", otlp_grpc_addr="127.0.0.1:1", batch_max_delay_ms=5000)
    process = start_serve(env, "--otlp-grpc-addr", f"127.0.0.1:{grpc_port}")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            export = channel.unary_unary(
                f"/{TRACE_SERVICE}/Export",
                request_serializer=None,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
            future = export.future(realistic_request(100).SerializeToString(), timeout=30)
            wait_until_received(env["OTELHOUSE_OTLP_HTTP_ADDR"], spans=100)
            process.send_signal(signal.SIGTERM)
            assert not future.result().HasField("partial_success")
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "shutting down" in output
    assert query_store(tmp_path / "data", "SELECT count() FROM otel.otel_traces") == ["100"]
