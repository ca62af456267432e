"""End to end: the OTel Python SDK exports over OTLP/gRPC to the real receiver, and the query
API reports exactly what the SDK recorded — requests, HTTP errors, exceptions, latency."""

from __future__ import annotations

import random
import time

import pytest
from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conftest import ReceiverThread
from tests.query.spans import assert_percentiles

REQUESTS = 60


def _export(endpoint: str, rng: random.Random) -> list[tuple[int, int, bool]]:
    """Server spans with chosen durations and statuses, every third failing with an
    exception; returns (duration ns, HTTP status, failed) per span."""
    provider = TracerProvider(resource=Resource({"service.name": "orders-sdk"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10))
    )
    tracer = provider.get_tracer("tests.query")
    sent = []
    start = time.time_ns() - 60 * 10**9
    for i in range(REQUESTS):
        duration = rng.randrange(10**5, 5 * 10**8)
        status = 500 if i % 3 == 0 else rng.choice((200, 404))
        span = tracer.start_span(
            "GET /orders/{id}",
            kind=SpanKind.SERVER,
            start_time=start + i * 10**8,
            attributes={
                "http.request.method": "GET",
                "http.route": "/orders/{id}",
                "http.response.status_code": status,
                "client.address": "192.0.2.7",
            },
        )
        if status == 500:
            try:
                raise KeyError(f"order {rng.randrange(10**6)} missing")
            except KeyError as exc:
                span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start + i * 10**8 + duration)
        sent.append((duration, status, status >= 500))
    provider.shutdown()
    return sent


def test_sdk_spans_through_the_receiver(api: TestClient, receiver: ReceiverThread) -> None:
    sent = _export(receiver.endpoint, random.Random(3))
    deadline = time.monotonic() + 20
    while api.get("/api/v1/summary").json()["requests"] < REQUESTS:
        assert time.monotonic() < deadline, "spans did not arrive"
        time.sleep(0.05)

    failed = sum(f for _, _, f in sent)
    summary = api.get("/api/v1/summary").json()
    assert (summary["requests"], summary["errors"], summary["endpoints"]) == (REQUESTS, failed, 1)
    assert summary["avg_ms"] == pytest.approx(sum(d for d, _, _ in sent) / REQUESTS / 1e6)
    (service,) = api.get("/api/v1/services").json()["services"]
    assert (service["service"], service["spans"], service["errors"]) == (
        "orders-sdk",
        REQUESTS,
        failed,
    )
    assert_percentiles(
        [service[f"p{p}_ms"] for p in (50, 90, 95, 99)],
        [d for d, _, _ in sent],
        (0.5, 0.9, 0.95, 0.99),
    )
    (exception,) = api.get("/api/v1/exceptions").json()["exceptions"]
    assert (exception["type"], exception["message"], exception["count"]) == (
        "KeyError",
        "'order <n> missing'",
        failed,
    )
    assert exception["sample_stacktrace"].startswith("Traceback (most recent call last)")
    by_status = api.get("/api/v1/errors", params={"group_by": "status_code"}).json()
    assert [(g["status_code"], g["errors"]) for g in by_status["groups"]] == [(500, failed)]
    recent = api.get("/api/v1/requests/recent", params={"limit": 5}).json()["requests"]
    assert [r["status_code"] for r in recent] == [status for _, status, _ in sent[::-1][:5]]
    assert {r["client_address"] for r in recent} == {"192.0.2.7"}
