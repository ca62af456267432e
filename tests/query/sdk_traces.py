"""One realistic trace sent by the real OTel Python SDK over OTLP/gRPC: two services, nested
spans, an exception event, a link. The SDK's own in-memory copy of the finished spans is the
expectation, so the test compares the store against what the client says it sent."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.query.trace_builder import SpanSpec


def _text(value: object) -> str:
    """The exporter's string form of the attribute types this trace uses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    raise TypeError(f"unexpected attribute value {value!r}")


def _spec(span: ReadableSpan) -> SpanSpec:
    context = span.get_span_context()
    resource = {k: _text(v) for k, v in span.resource.attributes.items() if k != "service.name"}
    return SpanSpec(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_span_id=f"{span.parent.span_id:016x}" if span.parent else "",
        name=span.name,
        service=str(span.resource.attributes["service.name"]),
        kind=span.kind.name.capitalize(),
        start_ns=span.start_time,
        duration_ns=span.end_time - span.start_time,
        status_code=span.status.status_code.name.capitalize(),
        status_message=span.status.description or "",
        trace_state=context.trace_state.to_header(),
        scope_name=span.instrumentation_scope.name,
        scope_version=span.instrumentation_scope.version or "",
        attributes={k: _text(v) for k, v in span.attributes.items()},
        resource=resource,
        events=[
            (e.timestamp, e.name, {k: _text(v) for k, v in e.attributes.items()})
            for e in span.events
        ],
        links=[
            (
                f"{link.context.trace_id:032x}",
                f"{link.context.span_id:016x}",
                link.context.trace_state.to_header(),
                {k: _text(v) for k, v in (link.attributes or {}).items()},
            )
            for link in span.links
        ],
    )


def _provider(service: str, endpoint: str, memory: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource({"service.name": service, "deployment.environment": "test"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10))
    )
    return provider


def send_shop_trace(endpoint: str) -> list[SpanSpec]:
    """Send the trace; return its spans as sent, ordered by start."""
    memory = InMemorySpanExporter()
    front = _provider("storefront", endpoint, memory)
    back = _provider("checkout", endpoint, memory)
    web = front.get_tracer("storefront.web", "2.0")
    pay = back.get_tracer("checkout.payments", "0.9")
    try:
        with web.start_as_current_span(
            "POST /checkout",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "http.route": "/checkout"},
        ) as root:
            with web.start_as_current_span("render cart", attributes={"items": 3}):
                pass
            with pay.start_as_current_span(
                "charge",
                kind=SpanKind.CLIENT,
                attributes={"payment.method": "card", "retry": True},
                links=[Link(root.get_span_context(), {"link.kind": "origin"})],
            ) as charge:
                try:
                    raise ValueError("card 4242 declined")
                except ValueError as exc:
                    charge.record_exception(exc)
                    charge.set_status(Status(StatusCode.ERROR, "declined"))
            root.set_attribute("http.response.status_code", 502)
    finally:
        front.shutdown()
        back.shutdown()
    return sorted(
        (_spec(s) for s in memory.get_finished_spans()), key=lambda s: (s.start_ns, s.span_id)
    )

