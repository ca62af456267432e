"""Logs request → ``otel_logs`` rows, the pure mapping: every field, each body kind, absent
and malformed ids, rejected records and limits. Expected values are written out by hand from
what each test sends."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from otelhouse.receiver.limits import ConvertLimits
from otelhouse.receiver.logs import convert_logs_request, log_record_count
from otelhouse.demo.payloads import any_value, kv
from tests.receiver.test_convert import nest_into

TRACE = bytes.fromhex("5B8EFFF798038103D269B633813FC60C")
SPAN = bytes.fromhex("EEE19B7EC3C1B174")
T0 = 1_700_000_000_123_456_789


def request_of(*records: LogRecord, resource: dict | None = None) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(kv(k, v) for k, v in (resource or {}).items())
    rl.scope_logs.add().log_records.extend(records)
    return request


def only_row(request: ExportLogsServiceRequest, limits: ConvertLimits = ConvertLimits()) -> dict:
    converted = convert_logs_request(request, limits)
    assert converted.rejected == 0
    (row,) = converted.logs.rows()
    return row


def test_every_field_is_mapped_as_the_collector_exporter_writes_it() -> None:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    rl.resource.attributes.extend(
        [kv("service.name", "checkout"), kv("host.cores", 8), kv("k8s.pod.name", "co-1")]
    )
    sl = rl.scope_logs.add(schema_url="https://opentelemetry.io/schemas/1.24.0")
    sl.scope.name = "checkout.logger"
    sl.scope.version = "2.1"
    sl.scope.attributes.append(kv("lib.debug", False))
    record = sl.log_records.add(
        time_unix_nano=T0,
        observed_time_unix_nano=T0 + 5,
        severity_number=17,
        severity_text="ERROR",
        body=AnyValue(string_value="card declined for order 4242"),
        flags=0x101,
        trace_id=TRACE,
        span_id=SPAN,
        event_name="payment.failed",
    )
    record.attributes.extend(
        [
            kv("s", "text"),
            kv("i", -42),
            kv("d", 0.25),
            kv("b", True),
            kv("raw", b"\x00\xffhi"),
            kv("arr", ["a", 1, 2.5, False]),
            kv("map", {"z": 1, "a": {"nested": [True]}}),
        ]
    )
    resource = {"service.name": "checkout", "host.cores": "8", "k8s.pod.name": "co-1"}
    assert convert_logs_request(request).error_message == ""
    assert only_row(request) == {
        "Timestamp": T0,
        "TraceId": "5b8efff798038103d269b633813fc60c",
        "SpanId": "eee19b7ec3c1b174",
        "TraceFlags": 1,
        "SeverityText": "ERROR",
        "SeverityNumber": 17,
        "ServiceName": "checkout",
        "Body": "card declined for order 4242",
        "ResourceSchemaUrl": "https://opentelemetry.io/schemas/1.26.0",
        "ResourceAttributes": resource,
        "ScopeSchemaUrl": "https://opentelemetry.io/schemas/1.24.0",
        "ScopeName": "checkout.logger",
        "ScopeVersion": "2.1",
        "ScopeAttributes": {"lib.debug": "false"},
        "LogAttributes": {
            "s": "text",
            "i": "-42",
            "d": "0.25",
            "b": "true",
            "raw": "AP9oaQ==",
            "arr": '["a",1,2.5,false]',
            "map": '{"a":{"nested":[true]},"z":1}',
        },
        "EventName": "payment.failed",
    }


def kvlist_with_an_empty_value() -> AnyValue:
    value = any_value({"msg": "hi", "n": 2})
    value.kvlist_value.values.add(key="ok")
    return value


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (None, ""),
        (any_value('multi\nline ünïcode {"not": json}'), 'multi\nline ünïcode {"not": json}'),
        (any_value(""), ""),
        (any_value(7), "7"),
        (any_value(-3.5), "-3.5"),
        (any_value(1e21), "1e+21"),
        (any_value(True), "true"),
        (any_value(b"\x01\x02"), "AQI="),
        (kvlist_with_an_empty_value(), '{"msg":"hi","n":2,"ok":null}'),
        (any_value(["x", {"b": 1.5, "a": []}]), '["x",{"a":[],"b":1.5}]'),
        (any_value({}), "{}"),
        (any_value([]), "[]"),
    ],
)
def test_body_of_each_kind_is_one_string(body: AnyValue | None, text: str) -> None:
    record = LogRecord(time_unix_nano=T0)
    if body is not None:
        record.body.CopyFrom(body)
    assert only_row(request_of(record))["Body"] == text


@pytest.mark.parametrize(
    ("time_ns", "observed_ns", "stored"),
    [(T0, T0 + 9, T0), (0, T0 + 9, T0 + 9), (T0, 0, T0), (0, 0, 0), (2**63 - 1, 0, 2**63 - 1)],
)
def test_timestamp_is_the_record_time_else_the_observed_time(
    time_ns: int, observed_ns: int, stored: int
) -> None:
    record = LogRecord(time_unix_nano=time_ns, observed_time_unix_nano=observed_ns)
    assert only_row(request_of(record))["Timestamp"] == stored


@pytest.mark.parametrize(
    ("trace_id", "span_id", "ids"),
    [
        (b"", b"", ("", "")),
        (TRACE, b"", ("5b8efff798038103d269b633813fc60c", "")),
        (b"", SPAN, ("", "eee19b7ec3c1b174")),
        (bytes(16), bytes(8), ("", "")),
    ],
)
def test_absent_ids_are_empty_strings(trace_id: bytes, span_id: bytes, ids: tuple) -> None:
    row = only_row(request_of(LogRecord(time_unix_nano=T0, trace_id=trace_id, span_id=span_id)))
    assert (row["TraceId"], row["SpanId"]) == ids


@pytest.mark.parametrize(
    ("flags", "severity", "stored"),
    [(0, 0, (0, 0)), (0xFF, 24, (255, 24)), (0x1234, 25, (0x34, 0)), (1, -1, (1, 0))],
)
def test_flags_keep_their_low_byte_and_unknown_severities_become_unspecified(
    flags: int, severity: int, stored: tuple
) -> None:
    row = only_row(request_of(LogRecord(time_unix_nano=T0, flags=flags, severity_number=severity)))
    assert (row["TraceFlags"], row["SeverityNumber"]) == stored


def test_service_name_comes_from_each_resource_and_is_empty_without_one() -> None:
    request = request_of(LogRecord(time_unix_nano=T0), resource={"service.name": "a"})
    request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=T0 + 1)
    rows = convert_logs_request(request).logs.rows()
    assert [(r["ServiceName"], r["ResourceAttributes"]) for r in rows] == [
        ("a", {"service.name": "a"}),
        ("", {}),
    ]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (LogRecord(time_unix_nano=T0, trace_id=TRACE[:8]), "trace_id has 8 bytes"),
        (LogRecord(time_unix_nano=T0, trace_id=TRACE + b"\0"), "trace_id has 17 bytes"),
        (LogRecord(time_unix_nano=T0, span_id=SPAN[:4]), "span_id has 4 bytes"),
        (LogRecord(time_unix_nano=T0, span_id=bytes(16)), "span_id has 16 bytes"),
        (LogRecord(time_unix_nano=2**63), "below 2^63 ns"),
        (LogRecord(observed_time_unix_nano=2**64 - 1), "below 2^63 ns"),
    ],
)
def test_malformed_records_are_rejected_and_counted_the_others_kept(
    record: LogRecord, reason: str
) -> None:
    good = LogRecord(time_unix_nano=T0, body=AnyValue(string_value="kept"))
    request = request_of(good, record, good)
    converted = convert_logs_request(request)
    assert converted.rejected == 1
    assert [row["Body"] for row in converted.logs.rows()] == ["kept", "kept"]
    assert converted.error_message.startswith("1 log record(s) rejected: ")
    assert reason in converted.error_message
    assert log_record_count(request) == 3


def test_log_record_count_counts_every_record_of_every_scope() -> None:
    request = ExportLogsServiceRequest()
    for per_scope in ([1, 2], [], [3]):
        rl = request.resource_logs.add()
        for count in per_scope:
            rl.scope_logs.add().log_records.extend(LogRecord() for _ in range(count))
    assert log_record_count(request) == 6
    assert log_record_count(ExportLogsServiceRequest()) == 0
    assert len(convert_logs_request(ExportLogsServiceRequest()).logs) == 0


def test_attribute_limits_apply_to_resource_scope_and_record_attributes() -> None:
    limits = ConvertLimits(max_attributes=2, max_value_bytes=32)
    request = request_of(
        LogRecord(time_unix_nano=T0), resource={"service.name": "svc", "r2": 1, "r3": 2}
    )
    scope = request.resource_logs[0].scope_logs[0].scope
    scope.attributes.extend([kv("s1", 1), kv("s2", 2), kv("s3", 3), kv("s4", 4)])
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    record.attributes.extend([kv("long", "é" * 20), kv("ok", "short")])
    row = only_row(request, limits)
    assert row["ResourceAttributes"] == {"service.name": "svc", "r2": "1"}
    assert row["ScopeAttributes"] == {"s1": "1", "s2": "2"}
    assert row["LogAttributes"] == {"long": "é" * 16, "ok": "short"}
    converted = convert_logs_request(request, limits)
    assert (converted.dropped_attributes, converted.truncated_values) == (1 + 2, 1)
    assert converted.truncated_bodies == 0
    assert converted.error_message == (
        "limits applied, affected log records are stored: 1 attribute value(s) truncated to "
        "32 bytes, 3 attribute(s) dropped beyond 2 per resource, scope or log record"
    )


def test_a_long_string_body_is_kept_whole() -> None:
    body = "x" * 100
    record = LogRecord(time_unix_nano=T0, body=AnyValue(string_value=body))
    converted = convert_logs_request(request_of(record), ConvertLimits(max_value_bytes=32))
    assert converted.logs.Body == [body]
    assert converted.error_message == ""


@pytest.mark.parametrize("depth", [1, 3, 4, 500])
def test_a_structured_body_is_cut_below_the_depth_limit_and_counted(depth: int) -> None:
    request = request_of(LogRecord(time_unix_nano=T0))
    nest_into(request.resource_logs[0].scope_logs[0].log_records[0].body, depth)
    converted = convert_logs_request(request, ConvertLimits(max_value_depth=3))
    rendered = json.loads(converted.logs.Body[0])
    levels = 0
    while isinstance(rendered, list):
        (rendered,) = rendered
        levels += 1
    if depth <= 3:
        assert (levels, rendered, converted.truncated_bodies) == (depth, "leaf", 0)
        assert converted.error_message == ""
    else:
        assert (levels, rendered) == (3, "[truncated: nested deeper than 3 levels]")
        assert (converted.truncated_bodies, converted.truncated_values) == (1, 0)
        assert "1 body(ies) nested deeper than 3 levels cut" in converted.error_message


def test_rejections_and_cuts_share_one_message() -> None:
    limits = ConvertLimits(max_attributes=0)
    request = request_of(
        LogRecord(time_unix_nano=T0, attributes=[kv("a", 1)]),
        LogRecord(time_unix_nano=T0, trace_id=b"\x01"),
    )
    message = convert_logs_request(request, limits).error_message
    assert message.startswith("1 log record(s) rejected: log record: trace_id has 1 bytes")
    assert message.endswith("; limits applied, affected log records are stored: 1 attribute(s) "
                            "dropped beyond 0 per resource, scope or log record")
