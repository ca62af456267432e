"""Realistic OTLP trace requests as raw protobuf: deterministic, with current timestamps.

The demo's traffic in the form a load generator sends it. The tests and the benchmarks under
``bench/`` build their payloads here, so a benchmark measures the same shape of traffic the
tests check.
"""

from __future__ import annotations

import random
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

ROUTES = ("/api/orders/{id}", "/api/cart", "/api/products", "/healthz", "/api/checkout")
METHODS = ("GET", "POST", "PUT")


def kv(key: str, value: object) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def any_value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(kv(k, v) for k, v in value.items())
        return out
    return AnyValue(string_value=str(value))


def realistic_request(
    spans: int = 512, *, service: str = "shop", seed: int = 0, now_ns: int | None = None
) -> ExportTraceServiceRequest:
    """``spans`` HTTP server/client spans (~550 bytes each) of one service, like an
    instrumented web app's batch exporter sends them."""
    rng = random.Random(seed)
    now_ns = now_ns or time.time_ns()
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        [
            kv("service.name", service),
            kv("service.version", "1.4.2"),
            kv("deployment.environment", "production"),
            kv("host.name", f"{service}-7d9f8b6c4-x2x9k"),
            kv("telemetry.sdk.language", "python"),
            kv("telemetry.sdk.name", "opentelemetry"),
            kv("telemetry.sdk.version", "1.45.2"),
        ]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.fastapi"
    scope_spans.scope.version = "0.66b2"
    for i in range(spans):
        route = ROUTES[rng.randrange(len(ROUTES))]
        method = METHODS[rng.randrange(len(METHODS))]
        status = 500 if rng.random() < 0.02 else 200
        start = now_ns - rng.randrange(1_000_000_000, 60_000_000_000)
        span = Span(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            parent_span_id=rng.randbytes(8) if i % 4 else b"",
            name=f"{method} {route}",
            kind=Span.SPAN_KIND_SERVER if i % 4 == 0 else Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start,
            end_time_unix_nano=start + rng.randrange(200_000, 400_000_000),
            status=Status(code=Status.STATUS_CODE_ERROR if status >= 500 else 0),
        )
        span.attributes.extend(
            [
                kv("http.request.method", method),
                kv("http.route", route),
                kv("http.response.status_code", status),
                kv("url.scheme", "http"),
                kv("url.path", route.replace("{id}", str(rng.randrange(100000)))),
                kv("server.address", "shop.internal"),
                kv("client.address", f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"),
                kv("user_agent.original", "python-httpx/0.28.1"),
            ]
        )
        scope_spans.spans.append(span)
    return request
