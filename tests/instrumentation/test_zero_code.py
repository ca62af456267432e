"""The zero-code path: ``opentelemetry-instrument uvicorn module:app`` configured only by
env vars, run as a subprocess that exports to the receiver fixture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from otelhouse.core.addresses import free_port

Stored = Callable[..., list[dict[str, Any]]]
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def zero_code_env(service: str, endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "OTEL_SERVICE_NAME": service,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{endpoint}",
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "healthz",
    }


def wait_until_serving(base: str, server: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited: {server.communicate()[0].decode()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


PLAIN = "tests.instrumentation.zero_code_app"
WITH_HELPER = "tests.instrumentation.zero_code_helper_app"
ZERO_CODE = [str(BIN / "opentelemetry-instrument")]


LAUNCHERS = [
    pytest.param(ZERO_CODE, PLAIN, signal.SIGINT, False, id="zero-code"),
    pytest.param(ZERO_CODE, WITH_HELPER, signal.SIGTERM, True, id="zero-code+helper"),
    pytest.param([], WITH_HELPER, signal.SIGTERM, True, id="helper-env-only"),
]
"""SIGINT for bare zero-code: uvicorn re-raises SIGTERM after its graceful shutdown, which
kills the process before the SDK's exit-time flush; the helper flushes on lifespan shutdown,
so it survives SIGTERM (how containers are stopped)."""


def serve_and_call(
    launcher: list[str],
    module: str,
    stop: signal.Signals,
    env: dict[str, str],
    paths: list[str],
) -> tuple[list[httpx.Response], str]:
    """Run ``uvicorn module:app`` under ``launcher``, GET ``paths``, stop it with ``stop``;
    the answers and everything the server printed."""
    port = free_port()
    command = [*launcher, str(BIN / "uvicorn"), f"{module}:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, server)
        with httpx.Client(base_url=base) as client:
            answers = [client.get(path) for path in paths]
    finally:
        server.send_signal(stop)
        output = server.communicate(timeout=30)[0].decode()
    return answers, output


@pytest.mark.parametrize(("launcher", "module", "stop", "has_header"), LAUNCHERS)
def test_env_configured_server_stores_spans(
    receiver: Any,
    stored: Stored,
    launcher: list[str],
    module: str,
    stop: signal.Signals,
    has_header: bool,
) -> None:
    service = f"zero-code-{uuid.uuid4().hex[:8]}"
    answers, output = serve_and_call(
        launcher,
        module,
        stop,
        zero_code_env(service, receiver.endpoint),
        ["/hello/ada", "/hello/bob", "/fail"],
    )

    assert [a.status_code for a in answers] == [200, 200, 500]
    assert ("x-trace-id" in answers[0].headers) is has_header
    requests = stored("ServiceName = {s:String} AND SpanKind = 'Server'", s=service)
    assert [(r["HttpRoute"], r["HttpStatusCode"]) for r in requests] == [
        ("/hello/{name}", 200),
        ("/hello/{name}", 200),
        ("/fail", 500),
    ], output
    assert requests[2]["StatusCode"] == "Error"
    assert requests[2]["EventAttributes"][0]["exception.message"] == "zero-code failure"
    if has_header:
        assert [a.headers["x-trace-id"] for a in answers] == [r["TraceId"] for r in requests]


@pytest.mark.parametrize(("launcher", "module", "stop", "has_header"), LAUNCHERS)
def test_env_configured_server_stores_logs_of_its_requests_once(
    receiver: Any,
    stored: Stored,
    stored_logs: Stored,
    launcher: list[str],
    module: str,
    stop: signal.Signals,
    has_header: bool,
) -> None:
    """``OTEL_LOGS_EXPORTER=otlp`` with the SDK's logging handler: under
    ``opentelemetry-instrument`` the helper leaves log export to it, so every record is
    stored once whoever exports it."""
    service = f"zero-code-logs-{uuid.uuid4().hex[:8]}"
    env = zero_code_env(service, receiver.endpoint)
    env["OTEL_LOGS_EXPORTER"] = "otlp"
    env["OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"] = "true"
    names = ["ada", "bob"]
    answers, output = serve_and_call(
        launcher, module, stop, env, [f"/hello/{name}" for name in names]
    )

    assert [a.status_code for a in answers] == [200, 200]
    requests = stored("ServiceName = {s:String} AND SpanKind = 'Server'", s=service)
    where = "ServiceName = {s:String} AND ScopeName = {l:String}"
    logs = stored_logs(where, s=service, l=PLAIN)
    assert [(r["SeverityText"], r["Body"]) for r in logs] == [
        ("WARN", f"greeting {name}") for name in names
    ], output
    assert [(r["TraceId"], r["SpanId"]) for r in logs] == [
        (r["TraceId"], r["SpanId"]) for r in requests
    ]
    assert all(r["ResourceAttributes"]["service.name"] == service for r in logs)


HISTOGRAM_COUNTS = (
    "SELECT MetricName AS name, ScopeName AS scope, max(Count) AS count "
    "FROM otel_metrics_histogram WHERE ServiceName = {s:String} "
    "GROUP BY MetricName, ScopeName, Attributes"
)


@pytest.mark.parametrize(("launcher", "module", "stop", "has_header"), LAUNCHERS[1:])
def test_env_configured_server_measures_each_request_once(
    receiver: Any,
    storage: Any,
    launcher: list[str],
    module: str,
    stop: signal.Signals,
    has_header: bool,
) -> None:
    """``OTEL_METRICS_EXPORTER=otlp``: under ``opentelemetry-instrument`` its FastAPI
    instrumentation measures the requests and the helper records nothing, only flushes the
    global meter provider on lifespan shutdown (so SIGTERM loses nothing); with the helper
    alone, the variable opts its metrics in."""
    service = f"zero-code-metrics-{uuid.uuid4().hex[:8]}"
    env = zero_code_env(service, receiver.endpoint)
    env["OTEL_METRICS_EXPORTER"] = "otlp"
    env["OTEL_METRIC_EXPORT_INTERVAL"] = "600000"
    answers, output = serve_and_call(launcher, module, stop, env, ["/hello/ada", "/hello/bob"])

    assert [a.status_code for a in answers] == [200, 200]
    rows = list(storage.query(HISTOGRAM_COUNTS, parameters={"s": service}).named_results())
    durations = [
        r for r in rows if r["name"].startswith("http.server.") and "duration" in r["name"]
    ]
    assert len(durations) == 1, (rows, output)
    assert durations[0]["count"] == 2
    helper_scope = durations[0]["scope"] == "otelhouse.instrumentation"
    assert helper_scope is (launcher == [])
