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
from otelhouse.settings import unknown_env_vars
from tests.serve_process import query_store, run_serve, serve_env, serving, start_serve, stop_serve


def test_serve_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for name in SERVE_SETTINGS:
        assert f"--{name.replace('_', '-')}" in text
        assert f"OTELHOUSE_{name.upper()}" in text


def test_help_placeholders_say_what_kind_of_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in (
        "--max-events-per-span N",
        "--stats-interval-s SECONDS",
        "--batch-max-delay-ms MS",
        "--data-dir DIR",
        "--api-addr HOST:PORT",
        "--wal-enabled true|false",
        "--tls-cert-file FILE",
    ):
        assert shown in text


def test_invalid_setting_names_the_flag_or_env_var_and_the_value(tmp_path: Path) -> None:
    env = {**serve_env(tmp_path), "OTELHOUSE_RETENTION_DAYS": "-3"}
    result = run_serve(env, "--otlp-grpc-addr", "nowhere")
    assert result.returncode != 0
    assert "invalid setting" in result.stderr
    assert "--otlp-grpc-addr 'nowhere'" in result.stderr
    assert "OTELHOUSE_RETENTION_DAYS='-3'" in result.stderr


def test_unknown_env_vars_are_named_with_the_closest_setting(tmp_path: Path) -> None:
    assert unknown_env_vars(
        {"OTELHOUSE_DATADIR": "x", "OTELHOUSE_API_TOKEN": "t", "OTELHOUSE_DATA_DIR": "d", "HOME": "/"}
    ) == ["OTELHOUSE_DATADIR is not an otelhouse setting and is ignored; did you mean "
          "OTELHOUSE_DATA_DIR?"]
    env = {**serve_env(tmp_path), "OTELHOUSE_RETENTON_DAYS": "7"}
    result = run_serve(env, "--otlp-grpc-addr", "nowhere")
    assert result.stderr.count("OTELHOUSE_RETENTON_DAYS is not an otelhouse setting") == 1
    assert "did you mean OTELHOUSE_RETENTION_DAYS?" in result.stderr


def test_second_serve_on_the_same_data_directory_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(serve_env(data)) as first:
        assert first.stdout is not None
        while "query API on" not in (line := first.stdout.readline()):
            assert line, "the first serve did not start"
        second = run_serve(serve_env(data))
        assert second.returncode == 1
        (message,) = [line for line in second.stderr.splitlines() if line.strip()]
        assert message == (
            f"otelhouse: another otelhouse process is already using the data directory {data}: "
            "stop it first, or give this one its own --data-dir."
        )
        stop_serve(first)


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
    assert "Started server process" not in output
    assert output.rstrip().splitlines()[-1].endswith("stopped: 100 spans and 0 log records stored")
    assert query_store(tmp_path / "data", "SELECT count() FROM otel.otel_traces") == ["100"]
