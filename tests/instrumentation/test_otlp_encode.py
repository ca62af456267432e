"""The direct wire encoder writes exactly what the SDK's protobuf encoder writes, and the
exporter built on it sends, retries and stores like the SDK's exporter."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
import pytest
from clickhouse_connect.driver.client import Client
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otelhouse.instrumentation.otlp_encode import encode_spans
from otelhouse.instrumentation.otlp_exporter import EXPORT_METHOD, WireOTLPSpanExporter

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
)
SCALARS: dict[str, Any] = {
    "text": "plain",
    "unicode": "Grüße, 世界 🚀",
    "empty": "",
    "true": True,
    "false": False,
    "zero": 0,
    "negative": -1,
    "int64 min": INT64_MIN,
    "int64 max": INT64_MAX,
    "too large": 1 << 64,
    "too small": INT64_MIN - 1,
    "float": 3.25,
    "negative zero": -0.0,
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "huge": 1.7976931348623157e308,
    "bytes": b"\x00\xffraw",
    "empty bytes": b"",
}
SEQUENCES: dict[str, Any] = {
    "strings": ["a", "", "é"],
    "bools": [True, False],
    "ints": [0, -5, INT64_MAX],
    "floats": [1.5, math.inf],
    "empty list": [],
}
NESTED: dict[str, Any] = {
    "mapping": {"a": 1, "b": "two", "": False},
    "nested": {"list": [{"deep": {"deeper": [1.5, b"x"]}}], "empty": {}},
    "mixed list": [1, "x", None, {"k": [True]}],
}


class CountingIds(IdGenerator):
    """Fixed trace id, span ids 1, 2, 3…: two runs of a scenario give spans that differ
    only where the test wants them to."""

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id
        self.last_span_id = 0

    def generate_span_id(self) -> int:
        self.last_span_id += 1
        return self.last_span_id

    def generate_trace_id(self) -> int:
        return self.trace_id


Scenario = Callable[[Callable[..., trace.Tracer]], None]


def recorded(
    scenario: Scenario, trace_id: int = 0x1234, limits: SpanLimits | None = None
) -> list[ReadableSpan]:
    """The spans a real TracerProvider ends while ``scenario`` runs; ``scenario`` gets
    ``tracer(scope, version=None, resource=..., schema_url=None, attributes=None)`` and each
    distinct resource name is its own provider, so spans of several resources interleave."""
    memory = InMemorySpanExporter()
    ids = CountingIds(trace_id)
    providers: dict[str, TracerProvider] = {}

    def tracer(
        scope: str,
        version: str | None = None,
        resource: str = "shop",
        schema_url: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> trace.Tracer:
        if resource not in providers:
            providers[resource] = TracerProvider(
                resource=Resource(
                    {"service.name": resource, "n": len(providers)}, f"https://{resource}"
                ),
                id_generator=ids,
                span_limits=limits,
            )
            providers[resource].add_span_processor(SimpleSpanProcessor(memory))
        return providers[resource].get_tracer(scope, version, schema_url, attributes)

    scenario(tracer)
    return list(memory.get_finished_spans())


def every_attribute_kind(tracer: Callable[..., trace.Tracer]) -> None:
    values = {**SCALARS, **SEQUENCES, **NESTED}
    with tracer("attrs").start_as_current_span("values", attributes=values) as span:
        span.add_event("event values", values)
    tracer("attrs").start_span("link values", links=[Link(REMOTE, values)]).end()


def events_links_status_kinds(tracer: Callable[..., trace.Tracer]) -> None:
    remote_parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    t = tracer("calls", "2.0.1", schema_url="https://opentelemetry.io/schemas/1.21.0")
    with t.start_as_current_span(
        "GET /items/{id}", context=remote_parent, kind=SpanKind.SERVER
    ) as server:
        server.add_event("no attributes")
        server.add_event("at zero", {"k": "v"}, timestamp=0)
        server.set_status(Status(StatusCode.ERROR, "boom: ünïcode"))
        for kind in SpanKind:
            with t.start_as_current_span(f"child {kind.name}", kind=kind) as child:
                child.set_status(Status(StatusCode.OK))
        try:
            links = [Link(REMOTE), Link(server.get_span_context())]
            with t.start_as_current_span("raises", links=links):
                raise ValueError("bad input")
        except ValueError:
            pass
    t.start_span("", kind=SpanKind.CONSUMER).end(end_time=None)


def several_resources_and_scopes(tracer: Callable[..., trace.Tracer]) -> None:
    scopes = [
        tracer("a"),
        tracer("b", "1.0", resource="inventory"),
        tracer("a", resource="inventory", attributes={"scope.attr": [1, 2]}),
        tracer("", resource="payments"),
        tracer("a", "1.0", schema_url="https://s"),
        tracer("b", "1.0", resource="inventory"),
    ]
    for round_ in range(3):
        for index, t in enumerate(scopes):
            t.start_span(f"span {round_}.{index}").end()


def over_the_limits(tracer: Callable[..., trace.Tracer]) -> None:
    links = [Link(REMOTE, {"a": 1, "b": 2})] * 3
    with tracer("limits").start_as_current_span("big", links=links) as span:
        for n in range(5):
            span.set_attribute(f"attr {n}", "x" * 20)
            span.add_event(f"event {n}", {"a": 1, "b": 2, "c": 3})


SCENARIOS: dict[str, tuple[Scenario, SpanLimits | None]] = {
    "every attribute kind": (every_attribute_kind, None),
    "events, links, status, kinds, remote parent": (events_links_status_kinds, None),
    "several resources and scopes": (several_resources_and_scopes, None),
    "dropped attributes, events, links": (
        over_the_limits,
        SpanLimits(max_attributes=2, max_events=2, max_links=1, max_attribute_length=8),
    ),
}


def assert_same_request(spans: Sequence[ReadableSpan]) -> None:
    expected = sdk_encode(spans)
    ours = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(ours) == expected
    assert ours == expected.SerializeToString()


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_encodes_like_the_sdk(name: str) -> None:
    scenario, limits = SCENARIOS[name]
    spans = recorded(scenario, limits=limits)
    assert spans
    assert_same_request(spans)


def test_all_scenarios_in_one_batch_encode_like_the_sdk() -> None:
    spans = [
        span
        for scenario, limits in SCENARIOS.values()
        for span in recorded(scenario, limits=limits)
    ]
    assert_same_request(spans)


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_spans([]) == sdk_encode([]).SerializeToString() == b""


any_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(INT64_MIN - 10, INT64_MAX + 10)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
attribute_maps = st.dictionaries(st.text(max_size=6), any_values, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(max_size=10),
    attributes=attribute_maps,
    event_attributes=attribute_maps,
    link_attributes=attribute_maps,
    kind=st.sampled_from(SpanKind),
    status=st.sampled_from(StatusCode),
    description=st.text(max_size=10),
    remote_parent=st.booleans(),
)
def test_any_span_encodes_like_the_sdk(
    name: str,
    attributes: dict[str, Any],
    event_attributes: dict[str, Any],
    link_attributes: dict[str, Any],
    kind: SpanKind,
    status: StatusCode,
    description: str,
    remote_parent: bool,
) -> None:
    def scenario(tracer: Callable[..., trace.Tracer]) -> None:
        remote = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
        parent = remote if remote_parent else None
        span = tracer("any").start_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            links=[Link(REMOTE, link_attributes)],
        )
        span.add_event(name, event_attributes)
        span.set_status(Status(status, description if status is StatusCode.ERROR else None))
        span.end()

    assert_same_request(recorded(scenario))


def test_raw_values_the_sdk_would_clean_encode_like_the_sdk() -> None:
    """Spans built by hand skip the SDK's attribute cleaning: the encoders still agree."""
    values = {**SCALARS, **SEQUENCES, **NESTED, "none": None, "tuple": (1, "a"), "object": object()}
    span = ReadableSpan(
        "raw",
        context=SpanContext(1, 2, is_remote=False),
        parent=REMOTE,
        attributes=values,
        resource=Resource.get_empty(),
        start_time=1,
        end_time=2,
    )
    assert_same_request([span])


def sdk_exporter(endpoint: str, **options: Any) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"http://{endpoint}", **options)


def wire_exporter(endpoint: str, **options: Any) -> OTLPSpanExporter:
    return WireOTLPSpanExporter(endpoint=f"http://{endpoint}", **options)


def export(
    make: Callable[..., OTLPSpanExporter],
    endpoint: str,
    spans: Sequence[ReadableSpan],
    **options: Any,
) -> SpanExportResult:
    exporter = make(endpoint, **options)
    try:
        return exporter.export(spans)
    finally:
        exporter.shutdown()


def test_wire_exporter_spans_are_stored_like_the_sdk_exporters(
    receiver: Any, storage: Client
) -> None:
    """The same scenarios, recorded twice under two trace ids with the same timestamps, go
    through the real receiver into storage, once per exporter: apart from the trace id,
    the stored rows are identical."""
    now = time.time_ns()

    def timed(trace_id: int) -> Scenario:
        caller = SpanContext(trace_id, 0x99, True, REMOTE.trace_flags, REMOTE.trace_state)
        return lambda tracer: two_spans(tracer("stored", "1.0"), caller)

    def two_spans(t: trace.Tracer, caller: SpanContext) -> None:
        remote_parent = trace.set_span_in_context(trace.NonRecordingSpan(caller))
        root = t.start_span(
            "GET /stock/{sku}", remote_parent, SpanKind.SERVER, NESTED | SCALARS, start_time=now
        )
        exception = {"exception.type": "ValueError", "exception.message": "é"}
        root.add_event("exception", exception, now + 5)
        links = [Link(REMOTE, {"l": 1})]
        in_root = trace.set_span_in_context(root)
        child = t.start_span("query", in_root, SpanKind.CLIENT, SEQUENCES, links, now + 1)
        child.set_status(Status(StatusCode.ERROR, "timeout"))
        child.end(now + 9)
        root.end(now + 10)

    traces = {"sdk": 0xA1, "wire": 0xB2}
    for make, trace_id in ((sdk_exporter, traces["sdk"]), (wire_exporter, traces["wire"])):
        spans = recorded(timed(trace_id), trace_id)
        assert export(make, receiver.endpoint, spans) is SpanExportResult.SUCCESS

    def rows(trace_id: int) -> list[dict[str, Any]]:
        sql = (
            "SELECT * EXCEPT (TraceId) FROM otel_traces WHERE TraceId = {id:String} "
            "ORDER BY SpanId"
        )
        return list(storage.query(sql, parameters={"id": f"{trace_id:032x}"}).named_results())

    stored_by_sdk = rows(traces["sdk"])
    assert len(stored_by_sdk) == 2
    assert rows(traces["wire"]) == stored_by_sdk


@pytest.fixture
def flaky_collector() -> Iterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    """An OTLP/gRPC trace service that answers the first export UNAVAILABLE with a
    RetryInfo of 10 ms and accepts the rest, keeping each raw request and its metadata."""
    received: list[tuple[bytes, dict[str, str]]] = []
    retry_info = RetryInfo(retry_delay=Duration(nanos=10_000_000)).SerializeToString()

    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        received.append((request, dict(context.invocation_metadata())))
        if len(received) == 1:
            context.set_trailing_metadata((("google.rpc.retryinfo-bin", retry_info),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return ExportTraceServiceResponse().SerializeToString()

    service, method = EXPORT_METHOD.strip("/").split("/")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                service, {method: grpc.unary_unary_rpc_method_handler(handle)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", received
    finally:
        server.stop(0)


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_wire_exporter_retries_and_sends_headers_like_the_sdk(
    flaky_collector: tuple[str, list[tuple[bytes, dict[str, str]]]], compression: grpc.Compression
) -> None:
    """UNAVAILABLE makes the SDK reconnect before retrying: the new channel must still send
    the encoded bytes as they are, with the headers, compressed as asked."""
    endpoint, received = flaky_collector
    spans = recorded(events_links_status_kinds)
    headers = {"authorization": "Bearer t"}
    result = export(wire_exporter, endpoint, spans, headers=headers, compression=compression)
    assert result is SpanExportResult.SUCCESS
    assert len(received) == 2
    expected = sdk_encode(spans).SerializeToString()
    for request, metadata in received:
        assert request == expected
        assert metadata["authorization"] == "Bearer t"
