"""The lean middleware's shortcuts keep the SDK's behaviour: attributes skip the SDK's checks
only where those checks could not change them, and propagation headers are gathered in one
pass without losing the propagator's view. Spans are the SDK's own, read from its in-memory
exporter; storage round trips are in ``test_instrument.py``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otelhouse.instrumentation import instrument_app
from otelhouse.instrumentation import span_attributes
from otelhouse.instrumentation.span_attributes import sampler_ignores_attributes, set_clean_attributes

USER_AGENT = "server-span-test/2.0 (+https://example.invalid/a/rather/long/user/agent)"


class AttributeSampler(Sampler):
    """Samples a request only when its method is GET, remembering what it was shown."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(  # type: ignore[no-untyped-def]
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, **_
    ):
        self.seen.append(dict(attributes or {}))
        keep = (attributes or {}).get("http.request.method") == "GET"
        return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP, attributes)

    def get_description(self) -> str:
        return "AttributeSampler"


class SubclassedRatio(TraceIdRatioBased):
    """A subclass from outside the SDK may override ``should_sample`` to read attributes."""


def make_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/items/{item_id}", methods=["GET", "POST"])
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


class Traced:
    """An instrumented app and the spans its provider ended."""

    def __init__(self, sampler: Sampler = DEFAULT_ON, limits: SpanLimits | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=sampler, span_limits=limits)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.app = make_app()
        instrument_app(self.app, tracer_provider=self.provider, correlate_logs=False)
        self.client = TestClient(self.app, client=("203.0.113.9", 40100))

    def get(self, path: str, headers: Sequence[tuple[str, str]] = ()) -> ReadableSpan:
        self.exporter.clear()
        answer = self.client.get(path, headers=[("user-agent", USER_AGENT), *headers])
        assert answer.status_code == 200
        (span,) = self.exporter.get_finished_spans()
        return span


def expected_attributes(path: str, **extra: Any) -> dict[str, Any]:
    """What the SDK's own ``set_attributes`` path stores for a TestClient GET of ``path``."""
    return {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": path,
        "network.protocol.version": "1.1",
        "client.address": "203.0.113.9",
        "client.port": 40100,
        "server.address": "testserver",
        "server.port": 80,
        "user_agent.original": USER_AGENT,
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
        **extra,
    }


@pytest.mark.parametrize(
    ("sampler", "ignores"),
    [
        (DEFAULT_ON, True),
        (ALWAYS_ON, True),
        (ALWAYS_OFF, True),
        (TraceIdRatioBased(0.5), True),
        (ParentBasedTraceIdRatio(0.25), True),
        (ParentBased(ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF), True),
        (AttributeSampler(), False),
        (ParentBased(AttributeSampler()), False),
        (ParentBased(ALWAYS_ON, local_parent_not_sampled=AttributeSampler()), False),
        (SubclassedRatio(0.5), False),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, bool) else str(value),
)
def test_only_the_sdks_own_samplers_count_as_ignoring_attributes(
    sampler: Sampler, ignores: bool
) -> None:
    tracer = TracerProvider(sampler=sampler).get_tracer("test")
    assert sampler_ignores_attributes(tracer) is ignores


def test_a_tracer_that_is_not_the_sdks_does_not_take_the_shortcut() -> None:
    assert sampler_ignores_attributes(trace.NoOpTracer()) is False


def test_the_installed_sdk_keeps_what_the_shortcut_writes_to() -> None:
    assert span_attributes.SDK_INTERNALS_KNOWN


@pytest.mark.parametrize("internals_known", [True, False], ids=["shortcut", "sdk-path"])
def test_shortcut_span_has_exactly_the_attributes_of_the_sdk_path(
    internals_known: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(span_attributes, "SDK_INTERNALS_KNOWN", internals_known)
    traced = Traced()
    span = traced.get("/items/7")
    assert dict(span.attributes) == expected_attributes("/items/7")
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert span.dropped_attributes == 0


@pytest.mark.parametrize(
    ("limits", "check"),
    [
        (
            SpanLimits(max_span_attribute_length=12),
            lambda attrs: attrs["user_agent.original"] == USER_AGENT[:12]
            and attrs["url.path"] == "/items/7",
        ),
        (
            SpanLimits(max_span_attributes=4),
            lambda attrs: len(attrs) == 4,
        ),
    ],
    ids=["value-length", "count"],
)
def test_span_limits_still_apply(limits: SpanLimits, check: Any) -> None:
    span = Traced(limits=limits).get("/items/7")
    assert check(dict(span.attributes)), dict(span.attributes)
    if limits.max_span_attributes == 4:
        assert span.dropped_attributes == len(expected_attributes("/items/7")) - 4


def test_a_sampler_that_reads_attributes_is_shown_them_at_start() -> None:
    sampler = AttributeSampler()
    traced = Traced(sampler=sampler)
    span = traced.get("/items/3")
    assert sampler.seen[-1]["http.request.method"] == "GET"
    assert sampler.seen[-1]["user_agent.original"] == USER_AGENT
    assert dict(span.attributes) == expected_attributes("/items/3")
    traced.exporter.clear()
    assert traced.client.post("/items/3").status_code == 200
    assert traced.exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    "span",
    [NonRecordingSpan(SpanContext(1, 2, False, TraceFlags(1))), trace.INVALID_SPAN],
    ids=["non-recording", "invalid"],
)
def test_clean_attributes_on_a_span_that_is_not_the_sdks_are_a_no_op(span: trace.Span) -> None:
    set_clean_attributes(span, {"http.route": "/x"})
    assert not span.is_recording()


def test_clean_attributes_after_end_are_ignored_as_the_sdk_ignores_them() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("test").start_span("ended")
    set_clean_attributes(span, {"before": 1})
    span.end()
    set_clean_attributes(span, {"after": 2})
    (ended,) = exporter.get_finished_spans()
    assert dict(ended.attributes) == {"before": 1}


TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


@pytest.mark.parametrize(
    ("headers", "parent_span_id", "remote"),
    [
        ([], None, False),
        ([("traceparent", TRACEPARENT)], PARENT_ID, True),
        ([("TraceParent", TRACEPARENT)], PARENT_ID, True),
        ([("traceparent", "00-not-a-valid-header-01")], None, False),
        ([("traceparent", TRACEPARENT), ("traceparent", TRACEPARENT)], None, False),
    ],
    ids=["none", "traceparent", "header-case", "malformed", "repeated"],
)
def test_request_continues_the_trace_its_headers_name(
    headers: list[tuple[str, str]], parent_span_id: int | None, remote: bool
) -> None:
    span = Traced().get("/items/1", headers)
    if parent_span_id is None:
        assert span.parent is None
        assert span.context.trace_id != TRACE_ID
    else:
        assert span.parent is not None
        assert (span.parent.span_id, span.parent.is_remote) == (parent_span_id, remote)
        assert span.context.trace_id == TRACE_ID


def test_request_without_headers_starts_a_new_trace_even_inside_another_span() -> None:
    traced = Traced()
    outer = traced.provider.get_tracer("test").start_span("outer")
    token = context.attach(trace.set_span_in_context(outer))
    try:
        span = traced.get("/items/1")
    finally:
        context.detach(token)
        outer.end()
    assert span.parent is None
    assert span.context.trace_id != outer.get_span_context().trace_id


class TicketPropagator(TextMapPropagator):
    """A vendor-style propagator: the trace id in ``x-ticket``, the parent span in ``x-hop``."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        ticket, hop = getter.get(carrier, "x-ticket"), getter.get(carrier, "x-hop")
        if not ticket or not hop:
            return context or Context()
        parent = SpanContext(int(ticket[0], 16), int(hop[0], 16), True, TraceFlags(1))
        return trace.set_span_in_context(NonRecordingSpan(parent), context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        pass

    @property
    def fields(self) -> set[str]:
        return {"x-ticket", "x-hop"}


@pytest.fixture
def ticket_propagation() -> Iterator[None]:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([previous, TicketPropagator()]))
    yield
    propagate.set_global_textmap(previous)


def test_a_propagator_set_after_instrumenting_is_honoured(ticket_propagation: None) -> None:
    traced = Traced()
    traced.get("/items/1")
    span = traced.get("/items/1", [("X-Ticket", f"{TRACE_ID:032x}"), ("x-hop", f"{PARENT_ID:x}")])
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None and span.parent.span_id == PARENT_ID


def test_repeated_baggage_headers_all_reach_the_propagator() -> None:
    seen: list[list[str]] = []
    traced = Traced()

    @traced.app.get("/baggage")
    async def read_baggage() -> dict[str, str]:
        from opentelemetry import baggage

        entries = baggage.get_all()
        seen.append(sorted(f"{k}={v}" for k, v in entries.items()))
        return {}

    traced.app.middleware_stack = None
    answer = traced.client.get(
        "/baggage", headers=[("baggage", "tenant=acme"), ("baggage", "region=eu")]
    )
    assert answer.status_code == 200
    assert seen == [["region=eu", "tenant=acme"]]


@pytest.mark.parametrize("fastapi_traces", [True, False], ids=["fastapi-traces", "metrics-only"])
def test_a_request_fastapi_traced_itself_gets_no_second_server_span(fastapi_traces: bool) -> None:
    pytest.importorskip("fastapi.telemetry", reason="FastAPI without its own telemetry")
    theirs, ours = InMemorySpanExporter(), InMemorySpanExporter()
    their_provider, our_provider = TracerProvider(), TracerProvider()
    their_provider.add_span_processor(SimpleSpanProcessor(theirs))
    our_provider.add_span_processor(SimpleSpanProcessor(ours))
    app = FastAPI(
        telemetry={"tracer_provider": their_provider, "tracing": fastapi_traces, "logs": False}
    )

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    instrument_app(app, tracer_provider=our_provider, correlate_logs=False)
    answer = TestClient(app).get("/items/5")

    assert answer.status_code == 200
    server_spans = [
        span
        for span in (*theirs.get_finished_spans(), *ours.get_finished_spans())
        if span.kind is SpanKind.SERVER
    ]
    assert len(server_spans) == 1
    (server,) = server_spans
    assert server.name == "GET /items/{item_id}"
    assert (server in theirs.get_finished_spans()) is fastapi_traces
    assert answer.headers["x-trace-id"] == f"{server.context.trace_id:032x}"


def test_tracestate_and_baggage_beside_traceparent_still_reach_the_span_and_the_app() -> None:
    seen: list[dict[str, object]] = []
    traced = Traced()

    @traced.app.get("/context")
    async def read_context() -> dict[str, str]:
        from opentelemetry import baggage

        seen.append(dict(baggage.get_all()))
        return {}

    answer = traced.client.get(
        "/context",
        headers=[("traceparent", TRACEPARENT), ("tracestate", "vendor=abc"), ("baggage", "k=v")],
    )
    assert answer.status_code == 200
    (span,) = traced.exporter.get_finished_spans()
    assert span.parent is not None and span.parent.span_id == PARENT_ID
    assert dict(span.context.trace_state) == {"vendor": "abc"}
    assert seen == [{"k": "v"}]
