"""request → rows, the pure mapping, against one exhaustive expected result."""

from __future__ import annotations

import base64
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otelhouse.settings import Settings
from otelhouse.receiver.convert import convert_request, format_double
from otelhouse.receiver.limits import ConvertLimits
from otelhouse.demo.payloads import kv, realistic_request

TRACE = bytes.fromhex("5B8EFFF798038103D269B633813FC60C")
SPAN = bytes.fromhex("EEE19B7EC3C1B174")
PARENT = bytes.fromhex("EEE19B7EC3C1B173")
LINKED_TRACE = bytes.fromhex("0AF7651916CD43DD8448EB211C80319C")
LINKED_SPAN = bytes.fromhex("B7AD6B7169203331")


def exhaustive_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", "checkout"), kv("host.cores", 8)])
    ss = rs.scope_spans.add()
    ss.scope.name = "checkout.tracer"
    ss.scope.version = "2.1"
    span = Span(
        trace_id=TRACE,
        span_id=SPAN,
        parent_span_id=PARENT,
        trace_state="vendor=a1",
        name="POST /pay",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_700_000_000_123_456_789,
        end_time_unix_nano=1_700_000_000_623_456_790,
        status=Status(code=Status.STATUS_CODE_ERROR, message="card declined"),
    )
    span.attributes.extend(
        [
            kv("s", "text"),
            kv("i", -42),
            kv("d", 0.25),
            kv("big", 1e21),
            kv("whole", 3.0),
            kv("b", True),
            kv("raw", b"\x00\xffhi"),
            kv("arr", ["a", 1, 2.5, False]),
            kv("map", {"z": 1, "a": {"nested": [True]}}),
        ]
    )
    span.attributes.add(key="empty")
    event = span.events.add(time_unix_nano=1_700_000_000_200_000_000, name="exception")
    event.attributes.extend(
        [
            kv("exception.type", "ValueError"),
            kv("exception.message", "bad card 4242"),
            kv("exception.stacktrace", 'Traceback (most recent call last):\n  File "x.py"'),
        ]
    )
    link = span.links.add(trace_id=LINKED_TRACE, span_id=LINKED_SPAN, trace_state="k=v")
    link.attributes.append(kv("link.kind", "retry"))
    ss.spans.append(span)
    ss.spans.append(Span(trace_id=TRACE, span_id=PARENT, name="root", kind=9))
    return request


def test_every_field_is_mapped_as_the_collector_exporter_writes_it() -> None:
    converted = convert_request(exhaustive_request())
    assert converted.rejected == 0 and converted.error_message == ""
    assert converted.spans.rows() == [
        {
            "Timestamp": 1_700_000_000_123_456_789,
            "TraceId": "5b8efff798038103d269b633813fc60c",
            "SpanId": "eee19b7ec3c1b174",
            "ParentSpanId": "eee19b7ec3c1b173",
            "TraceState": "vendor=a1",
            "SpanName": "POST /pay",
            "SpanKind": "Client",
            "ServiceName": "checkout",
            "ResourceAttributes": {"service.name": "checkout", "host.cores": "8"},
            "ScopeName": "checkout.tracer",
            "ScopeVersion": "2.1",
            "SpanAttributes": {
                "s": "text",
                "i": "-42",
                "d": "0.25",
                "big": "1e+21",
                "whole": "3",
                "b": "true",
                "raw": "AP9oaQ==",
                "arr": '["a",1,2.5,false]',
                "map": '{"a":{"nested":[true]},"z":1}',
                "empty": "",
            },
            "Duration": 500_000_001,
            "StatusCode": "Error",
            "StatusMessage": "card declined",
            "Events.Timestamp": [1_700_000_000_200_000_000],
            "Events.Name": ["exception"],
            "Events.Attributes": [
                {
                    "exception.type": "ValueError",
                    "exception.message": "bad card 4242",
                    "exception.stacktrace": 'Traceback (most recent call last):\n  File "x.py"',
                }
            ],
            "Links.TraceId": ["0af7651916cd43dd8448eb211c80319c"],
            "Links.SpanId": ["b7ad6b7169203331"],
            "Links.TraceState": ["k=v"],
            "Links.Attributes": [{"link.kind": "retry"}],
        },
        {
            "Timestamp": 0,
            "TraceId": "5b8efff798038103d269b633813fc60c",
            "SpanId": "eee19b7ec3c1b173",
            "ParentSpanId": "",
            "TraceState": "",
            "SpanName": "root",
            "SpanKind": "Unspecified",
            "ServiceName": "checkout",
            "ResourceAttributes": {"service.name": "checkout", "host.cores": "8"},
            "ScopeName": "checkout.tracer",
            "ScopeVersion": "2.1",
            "SpanAttributes": {},
            "Duration": 0,
            "StatusCode": "Unset",
            "StatusMessage": "",
            "Events.Timestamp": [],
            "Events.Name": [],
            "Events.Attributes": [],
            "Links.TraceId": [],
            "Links.SpanId": [],
            "Links.TraceState": [],
            "Links.Attributes": [],
        },
    ]


@pytest.mark.parametrize(
    ("trace_id", "span_id", "parent_id"),
    [
        (b"\x01" * 15, SPAN, b""),
        (b"\x00" * 16, SPAN, b""),
        (b"", SPAN, b""),
        (TRACE, b"\x01" * 7, b""),
        (TRACE, b"\x00" * 8, b""),
        (TRACE, b"", b""),
        (TRACE, SPAN, b"\x01" * 9),
    ],
    ids=[
        "short-trace", "zero-trace", "no-trace", "short-span", "zero-span", "no-span", "long-parent"
    ],
)
def test_malformed_ids_reject_only_that_span(
    trace_id: bytes, span_id: bytes, parent_id: bytes
) -> None:
    request = exhaustive_request()
    bad = request.resource_spans[0].scope_spans[0].spans.add()
    bad.CopyFrom(Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent_id, name="bad"))
    converted = convert_request(request)
    assert converted.rejected == 1
    assert "'bad'" in converted.error_message and "16 bytes" in converted.error_message
    assert [row["SpanName"] for row in converted.spans.rows()] == ["POST /pay", "root"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.5, "1.5"),
        (100.0, "100"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (0.1 + 0.2, "0.30000000000000004"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Inf"),
    ],
)
def test_doubles_render_like_go_pdata(value: float, text: str) -> None:
    assert format_double(value) == text


def test_empty_request_gives_no_rows() -> None:
    converted = convert_request(ExportTraceServiceRequest())
    assert len(converted.spans) == 0 and converted.rejected == 0


def longest_prefix_within(text: str, max_bytes: int) -> str:
    """Independent reference for truncation: whole characters while they fit."""
    size, end = 0, 0
    for end, char in enumerate(text, 1):
        size += len(char.encode("utf-8"))
        if size > max_bytes:
            return text[: end - 1]
    return text


def request_with(attributes: list, *, events: int = 0, links: int = 0) -> ExportTraceServiceRequest:
    """One valid span carrying ``attributes`` on its resource, itself, each event and link."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(attributes)
    span = rs.scope_spans.add().spans.add(trace_id=TRACE, span_id=SPAN, name="s")
    span.attributes.extend(attributes)
    for i in range(events):
        span.events.add(time_unix_nano=i, name=f"e{i}").attributes.extend(attributes)
    for i in range(links):
        span.links.add(trace_id=LINKED_TRACE, span_id=LINKED_SPAN).attributes.extend(attributes)
    return request


CAP = 64


@pytest.mark.parametrize(
    "value",
    [
        "a" * CAP,
        "a" * (CAP + 1),
        "é" * CAP,
        "a" + "é" * CAP,
        "€" * CAP,
        "a" + "€" * CAP,
        "🙂" * CAP,
        "ab" + "🙂" * CAP,
        "x" * 10_000,
    ],
    ids=["ascii-at-cap", "ascii-over", "2-byte", "2-byte-odd", "3-byte", "3-byte-shifted",
         "4-byte", "4-byte-shifted", "long"],
)
def test_long_string_values_are_cut_at_a_character_boundary(value: str) -> None:
    limits = ConvertLimits(max_value_bytes=CAP)
    converted = convert_request(request_with([kv("v", value)], events=1, links=1), limits)
    expected = longest_prefix_within(value, CAP)
    row = converted.spans.rows()[0]
    stored = [
        row["ResourceAttributes"]["v"],
        row["SpanAttributes"]["v"],
        row["Events.Attributes"][0]["v"],
        row["Links.Attributes"][0]["v"],
    ]
    assert stored == [expected] * 4
    assert len(expected.encode("utf-8")) <= CAP
    cut = expected != value
    assert converted.truncated_values == (4 if cut else 0)
    assert converted.rejected == 0
    assert (f"4 attribute value(s) truncated to {CAP} bytes" in converted.error_message) == cut


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        (b"\x01" * 60, base64.b64encode(b"\x01" * 60).decode()),
        (list(range(40)), json.dumps(list(range(40)), separators=(",", ":"))),
        ({"k": "v" * 80}, json.dumps({"k": "v" * 80}, separators=(",", ":"))),
    ],
    ids=["bytes", "array", "kvlist"],
)
def test_non_string_values_are_capped_after_rendering(value: object, rendered: str) -> None:
    converted = convert_request(request_with([kv("v", value)]), ConvertLimits(max_value_bytes=CAP))
    assert converted.spans.rows()[0]["SpanAttributes"]["v"] == rendered[:CAP]
    assert converted.truncated_values == 2


@pytest.mark.parametrize(
    ("attributes", "events", "links"),
    [(5, 3, 2), (6, 3, 2), (5, 4, 2), (5, 3, 5), (9, 7, 4), (0, 0, 0)],
    ids=["at-caps", "attributes", "events", "links", "all", "none"],
)
def test_counts_beyond_the_caps_are_dropped_and_counted(
    attributes: int, events: int, links: int
) -> None:
    limits = ConvertLimits(max_attributes=5, max_events=3, max_links=2)
    attrs = [kv(f"k{i}", i) for i in range(attributes)]
    converted = convert_request(request_with(attrs, events=events, links=links), limits)
    row = converted.spans.rows()[0]
    kept = {f"k{i}": str(i) for i in range(min(attributes, 5))}
    kept_events, kept_links = min(events, 3), min(links, 2)
    assert row["ResourceAttributes"] == row["SpanAttributes"] == kept
    assert row["Events.Name"] == [f"e{i}" for i in range(kept_events)]
    assert row["Events.Attributes"] == [kept] * kept_events
    assert row["Links.Attributes"] == [kept] * kept_links
    expected = (
        max(attributes - 5, 0) * (2 + kept_events + kept_links),
        events - kept_events,
        links - kept_links,
    )
    assert (converted.dropped_attributes, converted.dropped_events, converted.dropped_links) == (
        expected
    )
    assert converted.rejected == 0 and converted.truncated_values == 0
    assert bool(converted.error_message) == any(expected)


def nest_into(value: AnyValue, depth: int) -> None:
    """Make ``value`` ``depth`` arrays inside each other around "leaf", in place (a copy of
    a deep message would hit protobuf's own depth limit)."""
    for _ in range(depth - 1):
        value = value.array_value.values.add()
    value.array_value.values.add(string_value="leaf")


@pytest.mark.parametrize("depth", [1, 32, 33, 200, 2000])
def test_deep_nesting_is_cut_to_a_marker_without_recursion_errors(depth: int) -> None:
    request = request_with([])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    nest_into(span.attributes.add(key="d").value, depth)
    converted = convert_request(request, ConvertLimits(max_value_depth=32))
    rendered = json.loads(converted.spans.rows()[0]["SpanAttributes"]["d"])
    levels = 0
    while isinstance(rendered, list):
        (rendered,) = rendered
        levels += 1
    if depth <= 32:
        assert (levels, rendered, converted.truncated_values) == (depth, "leaf", 0)
    else:
        assert levels == 32 and rendered == "[truncated: nested deeper than 32 levels]"
        assert converted.truncated_values == 1 and converted.error_message


def test_default_limits_leave_realistic_traffic_untouched() -> None:
    request = realistic_request(64)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    event = span.events.add(name="exception")
    event.attributes.append(kv("exception.stacktrace", "  File \"app.py\", line 1\n" * 1200))
    converted = convert_request(request)
    assert converted.error_message == ""
    assert converted.truncated_values == converted.dropped_attributes == 0
    assert converted.spans.rows()[0]["Events.Attributes"][0]["exception.stacktrace"] == (
        event.attributes[0].value.string_value
    )


def test_rejections_and_cuts_share_one_message() -> None:
    request = request_with([kv("v", "x" * 100)])
    request.resource_spans[0].scope_spans[0].spans.add(name="bad", trace_id=b"\x01")
    converted = convert_request(request, ConvertLimits(max_value_bytes=CAP))
    assert converted.rejected == 1 and converted.truncated_values == 2
    assert converted.error_message.startswith("1 span(s) rejected: span 'bad'")
    assert converted.error_message.endswith(f"2 attribute value(s) truncated to {CAP} bytes")


def test_limits_come_from_settings() -> None:
    settings = Settings(
        max_attributes=7, max_attribute_value_bytes=99, max_events_per_span=3, max_links_per_span=4
    )
    assert settings.receiver_config().limits == ConvertLimits(
        max_attributes=7, max_value_bytes=99, max_events=3, max_links=4
    )


@pytest.mark.parametrize(
    ("start", "event", "stored"),
    [
        (2**63 - 1, 2**63 - 1, True),
        (2**63, 0, False),
        (2**64 - 1, 0, False),
        (1, 2**63, False),
    ],
    ids=["last-storable", "start-too-late", "start-max", "event-too-late"],
)
def test_times_beyond_datetime64_reject_only_that_span(
    start: int, event: int, stored: bool
) -> None:
    request = exhaustive_request()
    span = request.resource_spans[0].scope_spans[0].spans.add(
        trace_id=TRACE, span_id=LINKED_SPAN, name="late", start_time_unix_nano=start
    )
    span.events.add(time_unix_nano=event)
    converted = convert_request(request)
    assert ("late" in converted.spans.SpanName) == stored
    assert converted.rejected == (0 if stored else 1)
    assert ("2^63 ns" in converted.error_message) == (not stored)


@pytest.mark.parametrize(
    "changes",
    [{"max_value_bytes": 31}, {"max_attributes": -1}, {"max_events": -1}, {"max_value_depth": 0}],
)
def test_limits_refuse_values_that_cannot_hold(changes: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        ConvertLimits(**changes)
