"""Exporter choice and endpoint reading, and the resource's precedence rules."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

from otelhouse.instrumentation.exporter import build_exporter, exporter_endpoint, resolve_protocol
from otelhouse.instrumentation.log_export import level_number, logs_export_wanted
from otelhouse.instrumentation.resource import build_resource

GENERAL = "OTEL_EXPORTER_OTLP_PROTOCOL"
TRACES = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"


@pytest.mark.parametrize(
    ("argument", "env", "expected"),
    [
        (None, {}, "grpc"),
        ("http/protobuf", {}, "http/protobuf"),
        (None, {GENERAL: "http/protobuf"}, "http/protobuf"),
        (None, {GENERAL: "http/protobuf", TRACES: "grpc"}, "grpc"),
        ("grpc", {GENERAL: "http/protobuf", TRACES: "http/protobuf"}, "grpc"),
    ],
)
def test_protocol_argument_then_traces_env_then_general_env(
    argument: str | None, env: dict[str, str], expected: str
) -> None:
    assert resolve_protocol(argument, env) == expected


@pytest.mark.parametrize("bad", ["http/json", "udp"])
def test_unsupported_protocol_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="grpc, http/protobuf"):
        resolve_protocol(None, {GENERAL: bad})


@pytest.mark.parametrize(
    ("endpoint", "protocol", "expected"),
    [
        ("127.0.0.1:4317", "grpc", "http://127.0.0.1:4317"),
        ("https://otel.example.com:4317", "grpc", "https://otel.example.com:4317"),
        ("localhost:4318", "http/protobuf", "http://localhost:4318/v1/traces"),
        ("http://collector:4318/", "http/protobuf", "http://collector:4318/v1/traces"),
        (
            "http://collector:4318/custom/traces",
            "http/protobuf",
            "http://collector:4318/custom/traces",
        ),
    ],
)
def test_endpoint_is_read_like_the_standard_env_var(
    endpoint: str, protocol: str, expected: str
) -> None:
    assert exporter_endpoint(endpoint, protocol) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "   ", "ftp://host:21", "http://"])
def test_bad_endpoint_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        exporter_endpoint(bad, "grpc")


@pytest.mark.parametrize(
    ("protocol", "kind"), [("grpc", GrpcExporter), ("http/protobuf", HttpExporter)]
)
def test_protocol_picks_the_exporter(protocol: str, kind: type) -> None:
    exporter = build_exporter(protocol, "127.0.0.1:9", {"authorization": "Bearer t"})  # type: ignore[arg-type]
    try:
        assert isinstance(exporter, kind)
    finally:
        exporter.shutdown()


def test_resource_code_values_win_env_fills_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.version=9.9,deployment.environment.name=staging,team=core",
    )
    from_env = build_resource().attributes
    assert (from_env["service.name"], from_env["service.version"]) == ("from-env", "9.9")
    assert (from_env["deployment.environment.name"], from_env["team"]) == ("staging", "core")

    from_code = build_resource("shop", "1.0", "prod").attributes
    assert (from_code["service.name"], from_code["service.version"]) == ("shop", "1.0")
    assert (from_code["deployment.environment.name"], from_code["team"]) == ("prod", "core")


@pytest.mark.parametrize(
    ("argument", "env", "expected"),
    [
        (None, {TRACES: "http/protobuf"}, "grpc"),
        (None, {GENERAL: "http/protobuf", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc"}, "grpc"),
        ("http/protobuf", {"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc"}, "http/protobuf"),
    ],
)
def test_logs_protocol_reads_the_logs_env_var(
    argument: str | None, env: dict[str, str], expected: str
) -> None:
    assert resolve_protocol(argument, env, signal="logs") == expected


@pytest.mark.parametrize(
    ("endpoint", "protocol", "expected"),
    [
        ("127.0.0.1:4317", "grpc", "http://127.0.0.1:4317"),
        ("localhost:4318", "http/protobuf", "http://localhost:4318/v1/logs"),
        ("http://collector:4318/v1/traces", "http/protobuf", "http://collector:4318/v1/logs"),
        ("https://c.example/otlp/v1/traces", "http/protobuf", "https://c.example/otlp/v1/logs"),
    ],
)
def test_logs_endpoint_is_derived_from_the_traces_one(
    endpoint: str, protocol: str, expected: str
) -> None:
    assert exporter_endpoint(endpoint, protocol, "logs") == expected  # type: ignore[arg-type]


def test_logs_endpoint_that_cannot_be_derived_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="export_logs=False"):
        exporter_endpoint("http://collector:4318/custom/traces", "http/protobuf", "logs")


@pytest.mark.parametrize(
    ("argument", "env", "expected"),
    [
        (None, {}, True),
        (None, {"OTEL_LOGS_EXPORTER": "otlp"}, True),
        (None, {"OTEL_LOGS_EXPORTER": " none "}, False),
        (True, {"OTEL_LOGS_EXPORTER": "none"}, True),
        (False, {"OTEL_LOGS_EXPORTER": "otlp"}, False),
    ],
)
def test_logs_export_argument_then_otel_logs_exporter(
    argument: bool | None, env: dict[str, str], expected: bool
) -> None:
    assert logs_export_wanted(argument, env) is expected


def test_other_logs_exporters_and_levels_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="otlp or none"):
        logs_export_wanted(None, {"OTEL_LOGS_EXPORTER": "console"})
    with pytest.raises(ValueError, match="unknown log level"):
        level_number("verbose")
    assert (level_number("info"), level_number(logging.ERROR)) == (logging.INFO, logging.ERROR)
