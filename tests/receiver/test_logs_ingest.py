"""OTLP logs end to end: the OTel Python SDK's log exporters (gRPC and HTTP, gzip or not), an
OTLP/JSON golden request, partial success and the error codes traces get, all against the
real receivers storing into ``otel_logs``. Expected rows are computed here from what was
sent."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from clickhouse_connect.driver.client import Client
from google.protobuf import json_format
from google.rpc import code_pb2
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as LogRecordProto
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otelhouse.receiver.http_service import JSON, PROTOBUF
from otelhouse.receiver.logs import LOGS
from tests.receiver.http_harness import HttpReceiver, StartHttpReceiver
from tests.receiver.test_http import post, restamped_golden, status_of
from tests.receiver.test_metrics import moved, scrape

GOLDEN = Path(__file__).parent / "golden" / "logs.json"
COLUMNS = (
    "toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, TraceFlags, SeverityText, "
    "SeverityNumber, ServiceName, Body, ResourceSchemaUrl, ResourceAttributes, ScopeSchemaUrl, "
    "ScopeName, ScopeVersion, ScopeAttributes, LogAttributes, EventName"
)
TOKEN = "logs-token-5e1b"


def stored_logs(storage: Client) -> list[tuple]:
    rows = storage.query(f"SELECT {COLUMNS} FROM otel_logs").result_rows
    return sorted(tuple(_hashable(value) for value in row) for row in rows)


def _hashable(value: object) -> object:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def stored_count(storage: Client) -> int:
    return storage.query("SELECT count() FROM otel_logs").result_rows[0][0]


def json_of(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# The SDK's exporters

def python_text(value: object) -> str:
    """A Python body or attribute value as the exporter stores it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (int, float)):
        return str(value)
    return json_of(python_json(value))


def python_json(value: object) -> object:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: python_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [python_json(item) for item in value]
    return value


BODIES: list[object] = [
    "plain text ✓",
    -7,
    2.5,
    True,
    b"\x01\x02\xfe",
    ["a", 1, False, 0.5],
    {"order": 1234, "items": ["book", "pen"], "meta": {"gift": True}},
]
ATTRIBUTES = {"user.id": "u-1", "attempt": 3, "ratio": 0.5, "retry": False, "tags": ("a", "b")}
RESOURCE = {"service.name": "logs-sdk", "host.cores": 2, "deployment.environment.name": "test"}


def emit(count_outside_span: int = 1) -> tuple[list[ReadableLogRecord], list[tuple]]:
    """Records emitted through the SDK (one per body kind inside an active span, the rest
    outside any), and the rows they must become."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource(RESOURCE))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("logs.scope", "1.2.3")
    tracer = TracerProvider().get_tracer("logs.test")
    base = time.time_ns() - 10**9
    resource = json.dumps({key: python_text(value) for key, value in RESOURCE.items()}, sort_keys=True)
    expected = []

    def one(i: int, body: object, ids: tuple[str, str, int]) -> None:
        logger.emit(
            LogRecord(
                timestamp=base + i,
                context=get_current(),
                severity_text=f"WARN{i}",
                severity_number=SeverityNumber.WARN,
                body=body,
                attributes={**ATTRIBUTES, "i": i},
                event_name=f"event.{i}",
            )
        )
        attributes = {key: python_text(value) for key, value in {**ATTRIBUTES, "i": i}.items()}
        expected.append((
            base + i, *ids[:2], ids[2], f"WARN{i}", 13, "logs-sdk", python_text(body), "",
            resource, "", "logs.scope", "1.2.3", "{}", json.dumps(attributes, sort_keys=True),
            f"event.{i}",
        ))

    with tracer.start_as_current_span("work") as span:
        context = span.get_span_context()
        ids = (f"{context.trace_id:032x}", f"{context.span_id:016x}", int(context.trace_flags))
        for i, body in enumerate(BODIES):
            one(i, body, ids)
    for i in range(len(BODIES), len(BODIES) + count_outside_span):
        one(i, f"outside {i}", ("", "", 0))
    provider.shutdown()
    return list(memory.get_finished_logs()), sorted(expected)


EXPORTERS: dict[str, Callable[[HttpReceiver], Any]] = {
    "grpc": lambda r: GrpcLogExporter(endpoint=r.thread.endpoint, insecure=True, timeout=10),
    "grpc-gzip": lambda r: GrpcLogExporter(
        endpoint=r.thread.endpoint, insecure=True, timeout=10, compression=grpc.Compression.Gzip
    ),
    "http": lambda r: HttpLogExporter(endpoint=f"{r.url}/v1/logs", timeout=10),
    "http-gzip": lambda r: HttpLogExporter(
        endpoint=f"{r.url}/v1/logs", timeout=10, compression=Compression.Gzip
    ),
}


@pytest.mark.parametrize("transport", EXPORTERS, ids=list(EXPORTERS))
def test_sdk_log_exporter_records_round_trip_exactly(
    http_receiver: HttpReceiver, storage: Client, transport: str
) -> None:
    records, expected = emit()
    exporter = EXPORTERS[transport](http_receiver)
    assert exporter.export(records) is LogRecordExportResult.SUCCESS
    exporter.shutdown()
    assert expected[0][1] and expected[0][3] & 1, "records inside the sampled span carry its ids"
    assert stored_logs(storage) == expected


# OTLP/JSON golden request

def any_json(value: dict) -> object:
    """An OTLP/JSON AnyValue as the plain JSON the exporter renders containers with."""
    if not value:
        return None
    (kind, raw), = value.items()
    if kind == "intValue":
        return int(raw)
    if kind == "arrayValue":
        return [any_json(item) for item in raw.get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: any_json(kv["value"]) for kv in raw.get("values", [])}
    return raw


def any_text(value: dict | None) -> str:
    """An OTLP/JSON AnyValue (body or attribute) as stored."""
    if not value:
        return ""
    (kind, raw), = value.items()
    if kind == "boolValue":
        return "true" if raw else "false"
    if kind in ("arrayValue", "kvlistValue"):
        return json_of(any_json(value))
    return str(any_json(value))


def attribute_map(items: list[dict]) -> str:
    return json.dumps({kv["key"]: any_text(kv["value"]) for kv in items}, sort_keys=True)


def expected_golden_logs(document: dict) -> list[tuple]:
    rows = []
    for resource_logs in document["resourceLogs"]:
        resource = {kv["key"]: any_text(kv["value"]) for kv in resource_logs["resource"]["attributes"]}
        for scope_logs in resource_logs["scopeLogs"]:
            scope = scope_logs["scope"]
            for record in scope_logs["logRecords"]:
                rows.append((
                    int(record["timeUnixNano"]) or int(record["observedTimeUnixNano"]),
                    record.get("traceId", "").lower(),
                    record.get("spanId", "").lower(),
                    record.get("flags", 0) % 256,
                    record.get("severityText", ""),
                    record.get("severityNumber", 0),
                    resource["service.name"],
                    any_text(record.get("body")),
                    resource_logs["schemaUrl"],
                    json.dumps(resource, sort_keys=True),
                    scope_logs["schemaUrl"],
                    scope["name"],
                    scope["version"],
                    attribute_map(scope["attributes"]),
                    attribute_map(record.get("attributes", [])),
                    record.get("eventName", ""),
                ))
    return sorted(rows)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_otlp_json_golden_logs_are_stored_with_their_values(
    http_receiver: HttpReceiver, http_client: httpx.Client, storage: Client, gzipped: bool
) -> None:
    body, document = restamped_golden(time.time_ns(), GOLDEN)
    headers = {"content-encoding": "gzip"} if gzipped else {}
    sent = gzip.compress(body) if gzipped else body
    reply = post(http_client, f"{http_receiver.url}/v1/logs", sent, JSON, **headers)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {}
    assert stored_logs(storage) == expected_golden_logs(document)


# Malformed records, refusals

def request_with_a_bad_record(bad: LogRecordProto) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="partial"))
    )
    records = resource_logs.scope_logs.add().log_records
    now = time.time_ns()
    for i in range(3):
        records.add(time_unix_nano=now + i, body=AnyValue(string_value=f"good {i}"))
    records.insert(1, bad)
    return request


BAD_RECORDS = {
    "short trace id": (LogRecordProto(trace_id=b"\x01" * 5, body=AnyValue(string_value="bad")),
                       "trace_id has 5 bytes"),
    "long span id": (LogRecordProto(span_id=b"\x01" * 9, body=AnyValue(string_value="bad")),
                     "span_id has 9 bytes"),
    "after 2262": (LogRecordProto(time_unix_nano=2**63, body=AnyValue(string_value="bad")),
                   "below 2^63"),
}


def grpc_export(port: int, payload: bytes, **metadata: str) -> ExportLogsServiceResponse:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(
            LOGS.grpc_method,
            request_serializer=None,
            response_deserializer=ExportLogsServiceResponse.FromString,
        )
        return export(payload, timeout=10, metadata=list(metadata.items()))


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf", "http-json"])
@pytest.mark.parametrize("case", BAD_RECORDS, ids=list(BAD_RECORDS))
def test_malformed_records_are_a_partial_success_and_the_others_are_stored(
    http_receiver: HttpReceiver,
    http_client: httpx.Client,
    storage: Client,
    transport: str,
    case: str,
) -> None:
    bad, message = BAD_RECORDS[case]
    request = request_with_a_bad_record(bad)
    if transport == "grpc":
        response = grpc_export(http_receiver.thread.port, request.SerializeToString())
    elif transport == "http-protobuf":
        reply = post(http_client, f"{http_receiver.url}/v1/logs", request.SerializeToString(), PROTOBUF)
        assert reply.status_code == 200
        response = ExportLogsServiceResponse.FromString(reply.content)
    else:
        document = json_format.MessageToDict(request)
        for record, sent in zip(document["resourceLogs"][0]["scopeLogs"][0]["logRecords"],
                                request.resource_logs[0].scope_logs[0].log_records, strict=True):
            for key, raw in (("traceId", sent.trace_id), ("spanId", sent.span_id)):
                if raw:
                    record[key] = raw.hex()
        reply = post(http_client, f"{http_receiver.url}/v1/logs", json.dumps(document).encode(), JSON)
        assert reply.status_code == 200, reply.text
        response = json_format.Parse(reply.text, ExportLogsServiceResponse())
    assert response.partial_success.rejected_log_records == 1
    assert message in response.partial_success.error_message
    bodies = storage.query("SELECT Body, ServiceName FROM otel_logs ORDER BY Body").result_rows
    assert bodies == [(f"good {i}", "partial") for i in range(3)]


def big_logs_request(body_bytes: int) -> bytes:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.time_unix_nano = time.time_ns()
    record.body.string_value = "x" * body_bytes
    return request.SerializeToString()


HTTP_REFUSALS = {
    "undecodable": (b"\xff\xff\xff\xff", PROTOBUF, {}, 400, code_pb2.INVALID_ARGUMENT),
    "not-json": (b'{"resourceLogs": [', JSON, {}, 400, code_pb2.INVALID_ARGUMENT),
    "bad-gzip": (b"\x1f\x8b\x08\x00junk", PROTOBUF, {"content-encoding": "gzip"}, 400,
                 code_pb2.INVALID_ARGUMENT),
    "oversize": (big_logs_request(200_000), PROTOBUF, {}, 413, code_pb2.RESOURCE_EXHAUSTED),
    "oversize-after-gunzip": (gzip.compress(big_logs_request(200_000)), PROTOBUF,
                              {"content-encoding": "gzip"}, 413, code_pb2.RESOURCE_EXHAUSTED),
    "media-type": (big_logs_request(10), "text/plain", {}, 415, code_pb2.INVALID_ARGUMENT),
    "no-token": (big_logs_request(10), PROTOBUF, {}, 401, code_pb2.UNAUTHENTICATED),
}


@pytest.mark.parametrize("case", HTTP_REFUSALS, ids=list(HTTP_REFUSALS))
def test_http_refusals_get_the_same_codes_as_traces(
    start_http_receiver: StartHttpReceiver, http_client: httpx.Client, storage: Client, case: str
) -> None:
    body, media, headers, http_status, rpc_code = HTTP_REFUSALS[case]
    receiver = start_http_receiver(max_request_bytes=128 * 1024, otlp_tokens=TOKEN)
    auth = {} if case == "no-token" else {"authorization": f"Bearer {TOKEN}"}
    reply = post(http_client, f"{receiver.url}/v1/logs", body, media, **headers, **auth)
    assert reply.status_code == http_status, reply.text
    assert status_of(reply).code == rpc_code
    assert stored_count(storage) == 0
    good = post(http_client, f"{receiver.url}/v1/logs", big_logs_request(10), PROTOBUF,
                authorization=f"Bearer {TOKEN}")
    assert good.status_code == 200 and stored_count(storage) == 1


GRPC_REFUSALS = {
    "undecodable": (b"\xff\xff\xff\xff", True, grpc.StatusCode.INVALID_ARGUMENT),
    "oversize": (big_logs_request(200_000), True, grpc.StatusCode.RESOURCE_EXHAUSTED),
    "no-token": (big_logs_request(10), False, grpc.StatusCode.UNAUTHENTICATED),
}


@pytest.mark.parametrize("case", GRPC_REFUSALS, ids=list(GRPC_REFUSALS))
def test_grpc_refusals_get_the_same_codes_as_traces(
    start_http_receiver: StartHttpReceiver, storage: Client, case: str
) -> None:
    payload, with_token, code = GRPC_REFUSALS[case]
    receiver = start_http_receiver(max_request_bytes=128 * 1024, otlp_tokens=TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"} if with_token else {}
    with pytest.raises(grpc.RpcError) as refused:
        grpc_export(receiver.thread.port, payload, **auth)
    assert refused.value.code() is code
    assert stored_count(storage) == 0
    grpc_export(receiver.thread.port, big_logs_request(10), authorization=f"Bearer {TOKEN}")
    assert stored_count(storage) == 1


def test_metrics_count_log_records(
    http_receiver: HttpReceiver, http_client: httpx.Client, storage: Client
) -> None:
    before = scrape(http_client, http_receiver)
    request = request_with_a_bad_record(BAD_RECORDS["short trace id"][0])
    post(http_client, f"{http_receiver.url}/v1/logs", request.SerializeToString(), PROTOBUF)
    grpc_export(http_receiver.thread.port, big_logs_request(10))
    changes = moved(before, scrape(http_client, http_receiver))
    assert changes["otelhouse_receiver_log_records_received_total"] == 5
    assert changes["otelhouse_receiver_log_records_stored_total"] == 4
    assert changes["otelhouse_receiver_log_records_rejected_total"] == 1
    assert changes["otelhouse_receiver_requests_total"] == 2
    assert "otelhouse_receiver_spans_stored_total" not in changes
    assert stored_count(storage) == 4
