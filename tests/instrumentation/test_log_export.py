"""``instrument_app`` exporting ``logging`` records: a real app on uvicorn, a real OTLP export
to the receiver fixture, the rows read back from ``otel_logs`` and compared with the records
the test's own handler saw."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from otelhouse.core.addresses import free_port
from otelhouse.instrumentation import instrument_app, uninstrument_app
from otelhouse.instrumentation.log_export import ExportingHandler
from tests.app_server import serving
from tests.instrumentation.conftest import Records

Stored = Callable[..., list[dict[str, Any]]]
LOGGER = "tests.instrumentation.logged"
OTEL_SEVERITY = {"DEBUG": ("DEBUG", 5), "INFO": ("INFO", 9), "WARNING": ("WARN", 13)}
OTEL_SEVERITY["ERROR"] = ("ERROR", 17)


class RefundRefused(RuntimeError):
    pass


def make_app() -> FastAPI:
    app = FastAPI()
    log = logging.getLogger(LOGGER)

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        log.debug("order %d: cache miss", order_id)
        log.info("order %d looked up for %s", order_id, "ada")
        log.warning("order %d is %.1f days late", order_id, 2.5)
        return {"order_id": order_id}

    @app.post("/refunds/{order_id}")
    async def refund(order_id: int) -> dict[str, bool]:
        try:
            raise RefundRefused(f"refund of order {order_id} refused")
        except RefundRefused:
            log.exception("refund failed for order %d", order_id)
        return {"refunded": False}

    @app.get("/quiet")
    async def quiet() -> dict[str, bool]:
        return {"quiet": True}

    return app


@pytest.fixture
def log_records() -> Iterator[Records]:
    """What the app logged, as ``logging`` saw it (every level: the logger is set to DEBUG)."""
    handler = Records()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def app_logs(stored_logs: Stored, service: str) -> list[dict[str, Any]]:
    """The service's rows from the app's logger (the test's HTTP client logs to root too)."""
    return stored_logs("ServiceName = {s:String} AND ScopeName = {l:String}", s=service, l=LOGGER)


def test_records_at_and_above_the_threshold_carry_fields_resource_and_span(
    export_to: dict[str, str],
    stored: Stored,
    stored_logs: Stored,
    log_records: Records,
) -> None:
    service = unique("logged")
    app = make_app()
    handle = instrument_app(app, service, service_version="2.0.1", environment="test", **export_to)
    with serving(app) as base, httpx.Client(base_url=base) as client:
        looked_up = client.get("/orders/17")
        refused = client.post("/refunds/9")
    assert handle.shutdown()

    spans = {s["TraceId"]: s for s in stored("ServiceName = {s:String}", s=service)}
    rows = app_logs(stored_logs, service)
    exported = [r for r in log_records.records if r.levelno >= logging.INFO]
    assert [r.levelname for r in log_records.records] == ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert [row["Body"] for row in rows] == [r.getMessage() for r in exported]
    assert rows[0]["Body"] == "order 17 looked up for ada"
    for row, record in zip(rows, exported, strict=True):
        assert (row["SeverityText"], row["SeverityNumber"]) == OTEL_SEVERITY[record.levelname]
        assert row["TimestampNs"] == int(record.created * 1e9)
        assert row["ScopeName"] == LOGGER
        attributes = row["LogAttributes"]
        assert attributes["code.file.path"] == record.pathname == __file__
        assert attributes["code.line.number"] == str(record.lineno)
        assert attributes["code.function.name"] == record.funcName
        assert not {"trace_id", "span_id"} & set(attributes)
        resource = row["ResourceAttributes"]
        assert (resource["service.name"], resource["service.version"]) == (service, "2.0.1")
        assert resource["deployment.environment.name"] == "test"
        span = spans[row["TraceId"]]
        assert (row["TraceId"], row["SpanId"]) == (record.trace_id, record.span_id)
        assert span["SpanKind"] == "Server" and row["SpanId"] == span["SpanId"]
    assert [row["TraceId"] for row in rows] == [looked_up.headers["x-trace-id"]] * 2 + [
        refused.headers["x-trace-id"]
    ]

    error = rows[-1]["LogAttributes"]
    assert error["exception.type"] == RefundRefused.__name__
    assert error["exception.message"] == "refund of order 9 refused"
    assert error["exception.stacktrace"].startswith("Traceback (most recent call last)")
    assert 'raise RefundRefused(f"refund of order {order_id} refused")' in error[
        "exception.stacktrace"
    ]


def test_threshold_and_logger_name_choose_what_is_exported(
    receiver: Any, stored_logs: Stored, log_records: Records
) -> None:
    service = unique("threshold")
    app = make_app()
    handle = instrument_app(
        app, service, endpoint=receiver.endpoint, log_level="warning", logger_name=LOGGER
    )
    with serving(app) as base:
        httpx.get(f"{base}/orders/3")
    logging.getLogger("tests.instrumentation.elsewhere").error("not below %s", LOGGER)
    assert handle.shutdown()

    rows = stored_logs("ServiceName = {s:String}", s=service)
    assert [(r["SeverityText"], r["Body"]) for r in rows] == [("WARN", "order 3 is 2.5 days late")]


@pytest.mark.parametrize("opt_out", ["argument", "env"])
def test_opting_out_exports_nothing_and_adds_no_handler(
    receiver: Any,
    stored: Stored,
    stored_logs: Stored,
    log_records: Records,
    monkeypatch: pytest.MonkeyPatch,
    opt_out: str,
) -> None:
    service = unique("no-logs")
    if opt_out == "env":
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    arguments = {"export_logs": False} if opt_out == "argument" else {}
    app = make_app()
    handle = instrument_app(app, service, endpoint=receiver.endpoint, **arguments)
    with serving(app) as base:
        httpx.get(f"{base}/orders/4")
    assert handle.shutdown()

    assert handle.logs is None
    assert not any(isinstance(h, ExportingHandler) for h in logging.getLogger().handlers)
    assert len(log_records.records) == 3
    assert len(stored("ServiceName = {s:String}", s=service)) == 1
    assert stored_logs("ServiceName = {s:String}", s=service) == []


def test_lifespan_shutdown_flushes_and_uninstrument_closes(
    receiver: Any, stored_logs: Stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schedule delay longer than the test: only the flushes can have exported the rows."""
    monkeypatch.setenv("OTEL_BLRP_SCHEDULE_DELAY", "600000")
    service = unique("flushed")
    root = logging.getLogger()
    level_before = root.level
    app = make_app()
    handle = instrument_app(app, service, endpoint=receiver.endpoint)
    with serving(app) as base:
        httpx.get(f"{base}/orders/5")
    assert len(app_logs(stored_logs, service)) == 2

    logging.getLogger(LOGGER).warning("after the server stopped")
    uninstrument_app(app)
    assert [r["Body"] for r in app_logs(stored_logs, service)][-1] == (
        "after the server stopped"
    )
    assert not any(isinstance(h, ExportingHandler) for h in root.handlers)
    assert root.level == level_before
    logging.getLogger(LOGGER).warning("after uninstrument")
    assert handle.shutdown()
    assert len(app_logs(stored_logs, service)) == 3


def test_one_handler_per_logger_and_a_request_that_does_not_log_adds_nothing(
    receiver: Any, stored: Stored, stored_logs: Stored
) -> None:
    service = unique("twice")
    app = make_app()
    first = instrument_app(app, service, endpoint=receiver.endpoint)
    second = instrument_app(app, service, endpoint=receiver.endpoint)
    try:
        with pytest.raises(ValueError, match="already exports"):
            instrument_app(make_app(), unique("other"), endpoint=receiver.endpoint)
        exporting = [h for h in logging.getLogger().handlers if isinstance(h, ExportingHandler)]
        with serving(app) as base, httpx.Client(base_url=base) as client:
            client.get("/orders/6")
            client.get("/quiet")
    finally:
        assert first.shutdown()

    assert second is first and exporting == [first.logs.handler]
    assert len(stored("ServiceName = {s:String}", s=service)) == 2
    assert len(app_logs(stored_logs, service)) == 2


FAILING_EXPORT = """
import logging
from fastapi import FastAPI
from otelhouse.instrumentation import instrument_app

handle = instrument_app(FastAPI(), "unreachable", endpoint="127.0.0.1:{port}")
logging.getLogger("app").warning("order %d shipped", 8)
handle.force_flush(10_000)
logging.getLogger("app").warning("order %d delivered", 8)
handle.shutdown(10_000)
"""


def test_export_failure_is_shown_once_on_stderr_and_not_exported() -> None:
    """Without handlers of its own the app relies on ``lastResort``: its warnings, and the
    exporter's errors, are printed as without the helper; a failed export at most once.
    The flush's export always fails visibly; the one at shutdown races the SDK exporter's
    own shutdown, which may end its retries without a message, so it shows once or not."""
    script = FAILING_EXPORT.format(port=free_port())
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"OTEL_EXPORTER_OTLP_TIMEOUT": "1", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines.count("order 8 shipped") == lines.count("order 8 delivered") == 1, done.stderr
    failures = [line for line in lines if line.startswith("Failed to export logs to 127.0.0.1")]
    assert 1 <= len(failures) <= 2, done.stderr
    assert not [line for line in lines if "Queue full" in line or "Traceback" in line]
