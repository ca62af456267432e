"""Realistic OTLP trace and logs requests: deterministic by seed, with current timestamps.

The demo's traffic in the form a load generator sends it. The tests and the benchmarks under
``bench/`` build their payloads here, so a benchmark measures the same shape of traffic the
tests check.
"""

from __future__ import annotations

import random
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber
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


def resource_attributes(service: str) -> list[KeyValue]:
    """The resource of one pod of ``service`` instrumented by the Python SDK."""
    return [
        kv("service.name", service),
        kv("service.version", "1.4.2"),
        kv("deployment.environment", "production"),
        kv("host.name", f"{service}-7d9f8b6c4-x2x9k"),
        kv("telemetry.sdk.language", "python"),
        kv("telemetry.sdk.name", "opentelemetry"),
        kv("telemetry.sdk.version", "1.45.2"),
    ]


def realistic_request(
    spans: int = 512, *, service: str = "shop", seed: int = 0, now_ns: int | None = None
) -> ExportTraceServiceRequest:
    """``spans`` HTTP server/client spans (~550 bytes each) of one service, like an
    instrumented web app's batch exporter sends them."""
    rng = random.Random(seed)
    now_ns = now_ns or time.time_ns()
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(resource_attributes(service))
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


SEVERITIES: tuple[tuple[int, str, float], ...] = (
    (SeverityNumber.SEVERITY_NUMBER_INFO, "INFO", 0.85),
    (SeverityNumber.SEVERITY_NUMBER_WARN, "WARN", 0.10),
    (SeverityNumber.SEVERITY_NUMBER_ERROR, "ERROR", 0.05),
)
"""(number, text, share) of ``realistic_logs_request``'s records."""

LOGGERS = ("shop.api.orders", "shop.api.cart", "shop.payments", "shop.db")
"""Logger names: one instrumentation scope each, as the Python SDK's logging handler makes."""

BODY_LENGTH = (40, 200)
"""Shortest and longest body, in characters."""

_MESSAGES: dict[str, tuple[str, ...]] = {
    "INFO": (
        "order {order} created for customer {customer}: {items} items, total {cents} cents",
        "request GET {path} completed: status 200 in {ms} ms, {n} db queries",
        "cart {cart} updated: added sku-{sku} x{items}, {n} lines now",
        "payment {payment} authorized for order {order} ({cents} cents, card ending {last4})",
        "cache refresh of catalogue page {n} took {ms} ms, {items} products, hit ratio 0.{pct}",
    ),
    "WARN": (
        "slow query on orders ({ms} ms > 250 ms threshold) for customer {customer}",
        "retrying payment provider call for order {order}, attempt {attempt} of 3 after {ms} ms",
        "inventory for sku-{sku} low: {items} left, reorder point 25",
    ),
    "ERROR": (
        "payment {payment} declined for order {order}: provider answered 502 after {ms} ms",
        "failed to reserve sku-{sku} for cart {cart}: connection reset by inventory-{n}",
    ),
}

_STACKTRACE = (
    "Traceback (most recent call last):\n"
    '  File "/app/shop/payments.py", line {line}, in authorize\n'
    "    response = client.post(url, json=body, timeout=5.0)\n"
    '  File "/usr/local/lib/python3.12/site-packages/httpx/_client.py", line 1144, in post\n'
    "    return self.request(\"POST\", url, json=json, timeout=timeout)\n"
    "httpx.HTTPStatusError: Server error '502 Bad Gateway' for url "
    "'http://payments.internal/v1/authorize/{payment}'"
)


def _log_body(template: str, rng: random.Random) -> str:
    """``template`` filled with ids and numbers drawn from ``rng``, sometimes followed by
    request context; at most ``BODY_LENGTH[1]`` characters, and every template fills to at
    least ``BODY_LENGTH[0]``."""
    body = template.format(
        order=f"ord-{rng.randrange(10**8):08d}",
        customer=f"cus-{rng.randbytes(6).hex()}",
        cart=f"cart-{rng.randbytes(4).hex()}",
        payment=f"pay_{rng.randbytes(8).hex()}",
        path=ROUTES[rng.randrange(len(ROUTES))].replace("{id}", str(rng.randrange(100000))),
        items=rng.randrange(1, 40),
        cents=rng.randrange(199, 250_000),
        ms=rng.randrange(1, 3000),
        sku=rng.randrange(10000, 99999),
        n=rng.randrange(1, 12),
        last4=f"{rng.randrange(10000):04d}",
        pct=rng.randrange(10, 99),
        attempt=rng.randrange(2, 4),
    )
    if rng.random() < 0.4:
        body += (
            f" [request_id={rng.randbytes(16).hex()} tenant=t-{rng.randrange(5000)}"
            f" region=eu-west-{rng.randrange(1, 4)} pod={rng.randbytes(3).hex()}]"
        )
    return body[: BODY_LENGTH[1]]


def realistic_logs_request(
    records: int = 512, *, service: str = "shop", seed: int = 0, now_ns: int | None = None
) -> ExportLogsServiceRequest:
    """``records`` application log records of one service, as the Python SDK's logging
    handler exports them: one scope per logger in ``LOGGERS``; severities drawn with the
    shares of ``SEVERITIES``; bodies of ``BODY_LENGTH`` characters with ids and numbers;
    ``code.*`` attributes on every record, ``http.route`` on about half; trace and span ids
    (sampled flag) on about half; an ``exception.*`` stack trace on about half the errors.
    The same ``seed`` gives the same records apart from timestamps, which lie in the
    minute before ``now_ns`` (default: now)."""
    rng = random.Random(seed)
    now_ns = now_ns or time.time_ns()
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(resource_attributes(service))
    scopes = []
    for logger in LOGGERS:
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = logger
        scopes.append(scope_logs)
    levels = [(number, text) for number, text, _ in SEVERITIES]
    shares = [share for *_, share in SEVERITIES]
    for _ in range(records):
        index = rng.randrange(len(LOGGERS))
        number, text = rng.choices(levels, weights=shares)[0]
        time_ns = now_ns - rng.randrange(1_000_000_000, 60_000_000_000)
        record = LogRecord(
            time_unix_nano=time_ns,
            observed_time_unix_nano=time_ns + rng.randrange(10_000, 5_000_000),
            severity_number=number,
            severity_text=text,
            body=AnyValue(string_value=_log_body(rng.choice(_MESSAGES[text]), rng)),
        )
        if rng.random() < 0.5:
            record.trace_id = rng.randbytes(16)
            record.span_id = rng.randbytes(8)
            record.flags = 1
        module = LOGGERS[index].replace(".", "/")
        line = rng.randrange(20, 600)
        record.attributes.extend(
            [
                kv("code.filepath", f"/app/{module}.py"),
                kv("code.lineno", line),
                kv("code.function", rng.choice(("handle", "create", "update", "authorize"))),
                kv("thread.name", f"AnyIO worker thread {rng.randrange(40)}"),
            ]
        )
        if rng.random() < 0.5:
            record.attributes.append(kv("http.route", ROUTES[rng.randrange(len(ROUTES))]))
        if number == SeverityNumber.SEVERITY_NUMBER_ERROR and rng.random() < 0.5:
            payment = f"pay_{rng.randbytes(8).hex()}"
            record.attributes.extend(
                [
                    kv("exception.type", "httpx.HTTPStatusError"),
                    kv("exception.message", "Server error '502 Bad Gateway'"),
                    kv("exception.stacktrace", _STACKTRACE.format(line=line, payment=payment)),
                ]
            )
        scopes[index].log_records.append(record)
    return request
