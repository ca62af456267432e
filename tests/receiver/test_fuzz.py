"""Property-based fuzzing of request → rows: arbitrary OTLP requests, arbitrary bytes and
mutated valid payloads never crash the conversion, and every row it returns is storable.

The invariants are checked against the request itself (which spans have storable ids and
times), not against the converter's own helpers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from clickhouse_connect.driver.client import Client
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otelhouse.receiver.convert import MAX_TIME_NS, SPAN_KINDS, STATUS_CODES, Converted, convert_request
from otelhouse.receiver.limits import DEFAULT_LIMITS, MIN_VALUE_BYTES, ConvertLimits
from otelhouse.storage.traces import COLUMN_NAMES, insert_spans

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HEX_16 = re.compile(r"^[0-9a-f]{32}$")
HEX_8 = re.compile(r"^[0-9a-f]{16}$")
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT64 = st.integers(0, 2**64 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)

UTF8_CHARS = st.characters(codec="utf-8")
texts = st.one_of(
    st.text(UTF8_CHARS, max_size=20),
    st.builds(lambda char, n: char * n, UTF8_CHARS, st.integers(0, 3000)),
)
scalars = st.one_of(
    st.tuples(st.just("string_value"), texts),
    st.tuples(st.just("int_value"), INT64),
    st.tuples(st.just("double_value"), st.floats(allow_nan=True, allow_infinity=True)),
    st.tuples(st.just("bool_value"), st.booleans()),
    st.tuples(st.just("bytes_value"), st.binary(max_size=300)),
    st.just(("empty", None)),
)
any_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.tuples(st.just("array_value"), st.lists(children, max_size=4)),
        st.tuples(st.just("kvlist_value"), st.lists(st.tuples(texts, children), max_size=4)),
    ),
    max_leaves=8,
)
"""A value tree as (kind, payload); ``deep`` wraps one in up to 300 single-element arrays."""
deep = st.tuples(st.just("deep"), st.tuples(st.integers(1, 300), scalars))
attribute_values = st.one_of(any_values, deep)
attribute_lists = st.lists(st.tuples(texts, attribute_values), max_size=4)
ids = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=8, max_size=8),
    st.binary(max_size=20),
    st.just(b""),
    st.just(b"\0" * 16),
)


def fill_value(target: AnyValue, tree: tuple) -> None:
    """Write a value tree into ``target`` in place (copying a deep message would hit
    protobuf's own nesting limit before the converter sees it)."""
    kind, payload = tree
    if kind == "empty":
        return
    if kind == "deep":
        depth, leaf = payload
        for _ in range(depth):
            target = target.array_value.values.add()
        fill_value(target, leaf)
    elif kind == "array_value":
        target.array_value.SetInParent()
        for child in payload:
            fill_value(target.array_value.values.add(), child)
    elif kind == "kvlist_value":
        target.kvlist_value.SetInParent()
        for key, child in payload:
            fill_value(target.kvlist_value.values.add(key=key).value, child)
    else:
        setattr(target, kind, payload)


def fill_attributes(target, attributes: list) -> None:  # noqa: ANN001 - repeated KeyValue
    for key, tree in attributes:
        fill_value(target.add(key=key).value, tree)


ANY_IDS = (ids, ids, ids)


def draw_span(
    draw: st.DrawFn, span: Span, times: st.SearchStrategy[int], span_ids: tuple
) -> None:
    """Fill ``span`` in place (appending a built one would copy it, see ``fill_value``)."""
    trace_ids, own_ids, parent_ids = span_ids
    span.trace_id = draw(trace_ids)
    span.span_id = draw(own_ids)
    span.parent_span_id = draw(parent_ids)
    span.trace_state = draw(texts)
    span.name = draw(texts)
    span.kind = draw(INT32)
    span.start_time_unix_nano = draw(times)
    span.end_time_unix_nano = draw(times)
    span.status.code = draw(INT32)
    span.status.message = draw(texts)
    fill_attributes(span.attributes, draw(attribute_lists))
    for _ in range(draw(st.integers(0, 5))):
        event = span.events.add(time_unix_nano=draw(times), name=draw(texts))
        fill_attributes(event.attributes, draw(attribute_lists))
    for _ in range(draw(st.integers(0, 5))):
        link = span.links.add(trace_id=draw(ids), span_id=draw(ids), trace_state=draw(texts))
        fill_attributes(link.attributes, draw(attribute_lists))


ANY_IDS = (ids, ids, ids)


@st.composite
def requests(
    draw: st.DrawFn,
    times: st.SearchStrategy[int] = UINT64,
    span_ids: tuple = ANY_IDS,
    least: int = 0,
) -> ExportTraceServiceRequest:
    """``least`` resource, scope and span entries at each level (0: empty ones too)."""
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(least, 2))):
        resource_spans = request.resource_spans.add()
        fill_attributes(resource_spans.resource.attributes, draw(attribute_lists))
        for _ in range(draw(st.integers(least, 2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = draw(texts)
            scope_spans.scope.version = draw(texts)
            for _ in range(draw(st.integers(least, 3))):
                draw_span(draw, scope_spans.spans.add(), times, span_ids)
    return request


limits = st.one_of(
    st.just(DEFAULT_LIMITS),
    st.builds(
        ConvertLimits,
        max_attributes=st.integers(0, 8),
        max_value_bytes=st.integers(MIN_VALUE_BYTES, 200),
        max_events=st.integers(0, 4),
        max_links=st.integers(0, 4),
        max_value_depth=st.integers(1, 40),
    ),
)


def storable(span: Span) -> bool:
    """The OTLP rules the receiver enforces, restated from the spec, plus DateTime64(9)."""
    def valid(raw: bytes, size: int, optional: bool) -> bool:
        return (optional and raw == b"") or (len(raw) == size and any(raw))

    return (
        valid(span.trace_id, 16, False)
        and valid(span.span_id, 8, False)
        and valid(span.parent_span_id, 8, True)
        and span.start_time_unix_nano <= MAX_TIME_NS
        and all(event.time_unix_nano <= MAX_TIME_NS for event in span.events)
    )


def check_invariants(
    request: ExportTraceServiceRequest, converted: Converted, limits: ConvertLimits
) -> None:
    all_spans = [
        span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans
    ]
    expected = [span for span in all_spans if storable(span)]
    assert len(converted.spans) + converted.rejected == len(all_spans)
    assert converted.spans.SpanId == [span.span_id.hex() for span in expected]
    assert bool(converted.error_message) == bool(
        converted.rejected
        or converted.truncated_values
        or converted.dropped_attributes
        or converted.dropped_events
        or converted.dropped_links
    )
    for row, span in zip(converted.spans.rows(), expected, strict=True):
        assert HEX_16.match(row["TraceId"]) and HEX_8.match(row["SpanId"])
        assert row["ParentSpanId"] == "" or HEX_8.match(row["ParentSpanId"])
        assert row["SpanKind"] in SPAN_KINDS and row["StatusCode"] in STATUS_CODES
        assert 0 <= row["Timestamp"] <= MAX_TIME_NS and 0 <= row["Duration"] < 2**64
        assert all(0 <= ts <= MAX_TIME_NS for ts in row["Events.Timestamp"])
        assert len(row["Events.Name"]) == min(len(span.events), limits.max_events)
        assert len(row["Links.SpanId"]) == min(len(span.links), limits.max_links)
        for link_trace, link_span in zip(row["Links.TraceId"], row["Links.SpanId"]):
            assert link_trace == "" or HEX_16.match(link_trace)
            assert link_span == "" or HEX_8.match(link_span)
        maps = [row["ResourceAttributes"], row["SpanAttributes"]]
        maps += row["Events.Attributes"] + row["Links.Attributes"]
        for attributes in maps:
            assert len(attributes) <= limits.max_attributes
            for key, value in attributes.items():
                assert type(key) is str and type(value) is str
                assert len(value.encode("utf-8")) <= limits.max_value_bytes


@FUZZ
@given(request=requests(), limits=limits)
def test_any_request_converts_to_storable_rows(
    request: ExportTraceServiceRequest, limits: ConvertLimits
) -> None:
    check_invariants(request, convert_request(request, limits), limits)


def decode_and_convert(payload: bytes) -> None:
    """What the receiver does with a payload: DecodeError is the one allowed failure."""
    try:
        request = ExportTraceServiceRequest.FromString(payload)
    except DecodeError:
        return
    check_invariants(request, convert_request(request), DEFAULT_LIMITS)


@settings(FUZZ, max_examples=1000)
@given(payload=st.binary(max_size=2000))
def test_arbitrary_bytes_decode_or_fail_cleanly(payload: bytes) -> None:
    decode_and_convert(payload)


MUTATIONS: dict[str, Callable[[bytearray, int, int], None]] = {
    "flip": lambda data, at, byte: data.__setitem__(at, data[at] ^ (byte or 1)),
    "set": lambda data, at, byte: data.__setitem__(at, byte),
    "insert": lambda data, at, byte: data.insert(at, byte),
    "delete": lambda data, at, _: data.__delitem__(at),
    "truncate": lambda data, at, _: data.__delitem__(slice(at, None)),
}


@FUZZ
@given(
    request=requests(),
    edits=st.lists(
        st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 2**16), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    ),
)
def test_mutated_valid_payloads_decode_or_fail_cleanly(
    request: ExportTraceServiceRequest, edits: list[tuple[str, int, int]]
) -> None:
    data = bytearray(request.SerializeToString())
    for name, position, byte in edits:
        if data:
            MUTATIONS[name](data, position % len(data), byte)
    decode_and_convert(bytes(data))


def test_deepest_decodable_nesting_converts() -> None:
    """Over the wire protobuf refuses messages nested beyond its limit; anything it accepts
    must convert, however deep."""
    for depth in range(1, 120):
        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add(
            trace_id=b"\1" * 16, span_id=b"\1" * 8
        )
        fill_value(span.attributes.add(key="d").value, ("deep", (depth, ("int_value", 1))))
        payload = request.SerializeToString()
        try:
            decoded = ExportTraceServiceRequest.FromString(payload)
        except DecodeError:
            assert depth > DEFAULT_LIMITS.max_value_depth
            return
        check_invariants(decoded, convert_request(decoded), DEFAULT_LIMITS)
    pytest.fail("protobuf decoded 120 nested arrays; raise the probe")


RECENT = st.integers(0, 3_600_000_000_000).map(lambda ago: time.time_ns() - ago)
TIMES_TO_STORE = st.one_of(RECENT, st.sampled_from([0, MAX_TIME_NS, 2**63, 2**64 - 1]))
VALID_IDS = (
    st.binary(min_size=16, max_size=16).filter(any),
    st.binary(min_size=8, max_size=8).filter(any),
    st.one_of(st.just(b""), st.binary(min_size=8, max_size=8).filter(any)),
)
STORE_LIMITS = ConvertLimits(max_attributes=3, max_value_bytes=50, max_events=2, max_links=2)
READ_BACK = ", ".join(
    {
        "Timestamp": "toUnixTimestamp64Nano(Timestamp)",
        "Events.Timestamp": "arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`)",
    }.get(name, f"`{name}`")
    for name in COLUMN_NAMES
)


def recent(row: dict) -> bool:
    """Rows the table keeps: older than the TTL or past the Date partition range vanish."""
    return time.time_ns() - 86_400_000_000_000 < row["Timestamp"] <= time.time_ns()


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(request=requests(TIMES_TO_STORE, VALID_IDS, least=1))
def test_generated_batch_is_stored_and_read_back_unchanged(
    storage: Client, request: ExportTraceServiceRequest
) -> None:
    """Extreme times and values, values cut mid-string, in one batch: the insert must
    succeed (one unstorable row would fail it whole) and every row inside the retention
    window reads back as converted."""
    scope_spans = request.resource_spans[0].scope_spans[0]
    for start in (MAX_TIME_NS, MAX_TIME_NS + 1):
        scope_spans.spans.add(trace_id=b"\1" * 16, span_id=b"\2" * 8, start_time_unix_nano=start)
    converted = convert_request(request, STORE_LIMITS)
    assert MAX_TIME_NS in converted.spans.Timestamp and converted.rejected >= 1
    expected = [row for row in converted.spans.rows() if recent(row)]
    assume(expected)
    storage.command("TRUNCATE TABLE otel_traces")
    insert_spans(storage, converted.spans)
    stored = storage.query(f"SELECT {READ_BACK} FROM otel_traces").result_rows
    back = [dict(zip(COLUMN_NAMES, row, strict=True)) for row in stored]
    assert sorted(map(repr, filter(recent, back))) == sorted(map(repr, expected))
