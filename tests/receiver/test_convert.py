"""request → rows, the pure mapping, against one exhaustive expected result."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from receiver.convert import convert_request, format_double
from tests.payloads import kv

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
    ids=["short-trace", "zero-trace", "no-trace", "short-span", "zero-span", "no-span", "long-parent"],
)
def test_malformed_ids_reject_only_that_span(trace_id: bytes, span_id: bytes, parent_id: bytes) -> None:
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
