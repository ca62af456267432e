"""``instrument_app`` end to end: a real app on uvicorn, a real OTLP/gRPC export to the
receiver fixture, and the spans read back from storage."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from otelhouse.instrumentation import instrument_app, instrumentation_of, uninstrument_app
from tests.app_server import serving
from tests.instrumentation.conftest import Records

Stored = Callable[..., list[dict[str, Any]]]
LOGGER = "tests.instrumentation.app"


class PaymentDeclined(RuntimeError):
    pass


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        logging.getLogger(LOGGER).warning("looking up order %d", order_id)
        return {"order_id": order_id}

    @app.post("/pay")
    async def pay() -> None:
        raise PaymentDeclined("card 4242 declined: insufficient funds")

    return app


@pytest.fixture(params=["lean", "contrib"])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def log_records() -> Records:
    handler = Records()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_server_span_carries_route_status_method_client_and_header(
    export_to: dict[str, str], stored: Stored, log_records: Records, engine: str
) -> None:
    service = f"orders-{uuid.uuid4().hex[:8]}"
    app = make_app()
    handle = instrument_app(app, service, service_version="1.2.3", engine=engine, **export_to)
    user_agent = f"pytest-agent/{uuid.uuid4().hex[:6]}"
    with serving(app) as base:
        answer = httpx.get(f"{base}/orders/17", headers={"user-agent": user_agent})
    assert handle.shutdown()

    assert answer.status_code == 200
    (span,) = stored("ServiceName = {s:String}", s=service)
    assert answer.headers["x-trace-id"] == span["TraceId"]
    assert (span["SpanKind"], span["SpanName"]) == ("Server", "GET /orders/{order_id}")
    assert (span["HttpMethod"], span["HttpRoute"], span["HttpStatusCode"]) == (
        "GET",
        "/orders/{order_id}",
        200,
    )
    assert span["ClientAddress"] == "127.0.0.1"
    attributes = span["SpanAttributes"]
    assert user_agent in (attributes.get("user_agent.original"), attributes.get("http.user_agent"))
    assert span["ResourceAttributes"]["service.version"] == "1.2.3"
    assert span["StatusCode"] == "Unset"

    (record,) = log_records.records
    assert (record.trace_id, record.span_id) == (span["TraceId"], span["SpanId"])


def test_exception_becomes_event_with_stacktrace_and_error_status(
    receiver: Any, stored: Stored, engine: str
) -> None:
    service = f"pay-{uuid.uuid4().hex[:8]}"
    app = make_app()
    handle = instrument_app(app, service, endpoint=receiver.endpoint, engine=engine)
    with serving(app) as base:
        answer = httpx.post(f"{base}/pay")
    assert handle.shutdown()

    assert answer.status_code == 500
    (span,) = stored("ServiceName = {s:String}", s=service)
    assert answer.headers["x-trace-id"] == span["TraceId"]
    assert span["StatusCode"] == "Error"
    assert span["HttpStatusCode"] == 500
    assert span["EventNames"] == ["exception"]
    event = span["EventAttributes"][0]
    assert event["exception.type"].endswith(PaymentDeclined.__qualname__)
    assert event["exception.message"] == "card 4242 declined: insufficient funds"
    assert "Traceback (most recent call last)" in event["exception.stacktrace"]
    assert 'raise PaymentDeclined("card 4242 declined' in event["exception.stacktrace"]


def test_instrumenting_twice_gives_one_span_per_request(
    receiver: Any, stored: Stored, engine: str
) -> None:
    service = f"twice-{uuid.uuid4().hex[:8]}"
    app = make_app()
    first = instrument_app(app, service, endpoint=receiver.endpoint, engine=engine)
    second = instrument_app(app, service, endpoint=receiver.endpoint, engine=engine)
    requests = 4
    with serving(app) as base, httpx.Client(base_url=base) as client:
        trace_ids = [client.get(f"/orders/{n}").headers["x-trace-id"] for n in range(requests)]
    assert first.shutdown()

    assert second is first
    spans = stored("ServiceName = {s:String}", s=service)
    assert len(spans) == requests
    assert sorted(s["TraceId"] for s in spans) == sorted(trace_ids)
    assert len(set(trace_ids)) == requests


def test_uninstrument_stops_spans_header_and_log_fields(
    receiver: Any, stored: Stored, log_records: Records, engine: str
) -> None:
    service = f"undo-{uuid.uuid4().hex[:8]}"
    app = make_app()
    handle = instrument_app(app, service, endpoint=receiver.endpoint, engine=engine)
    with serving(app) as base, httpx.Client(base_url=base) as client:
        traced = client.get("/orders/1")
        uninstrument_app(app)
        untraced = client.get("/orders/2")
    assert handle.shutdown()

    assert instrumentation_of(app) is None
    assert "x-trace-id" in traced.headers and "x-trace-id" not in untraced.headers
    assert [r.trace_id for r in log_records.records[:1]] == [traced.headers["x-trace-id"]]
    assert getattr(log_records.records[1], "trace_id", "") == ""
    spans = stored("ServiceName = {s:String}", s=service)
    assert [s["TraceId"] for s in spans] == [traced.headers["x-trace-id"]]


def test_standard_env_vars_configure_resource_and_exporter(
    receiver: Any, stored: Stored, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    service = f"env-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging,team=core")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{receiver.endpoint}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    app = make_app()
    handle = instrument_app(app, engine=engine)
    with serving(app) as base:
        httpx.get(f"{base}/orders/5")
    assert handle.shutdown()

    (span,) = stored("ServiceName = {s:String}", s=service)
    resource = span["ResourceAttributes"]
    assert (resource["deployment.environment.name"], resource["team"]) == ("staging", "core")


def test_tracer_provider_and_exporter_settings_are_exclusive() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    with pytest.raises(ValueError, match="not both"):
        instrument_app(make_app(), tracer_provider=TracerProvider(), endpoint="127.0.0.1:4317")
