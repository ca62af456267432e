"""OTLP/HTTP ``/v1/traces``: the real SDK exporter, OTLP/JSON as other SDKs write it, gzip,
and the spec's status codes, each followed by a valid request that must still succeed."""

from __future__ import annotations

import gzip
import json
import resource
import time
from pathlib import Path

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otelhouse.receiver.http_service import JSON, PROTOBUF
from otelhouse.demo.payloads import realistic_request
from tests.receiver.http_harness import HttpReceiver, StartHttpReceiver, stored_count

GOLDEN = Path(__file__).parent / "golden" / "traces.json"
GOLDEN_BASE_NS = 1_700_000_000_000_000_000
SPAN_KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
STATUS_CODES = ["Unset", "Ok", "Error"]


def post(
    client: httpx.Client, url: str, body: bytes, media: str, **headers: str
) -> httpx.Response:
    return client.post(url, content=body, headers={"content-type": media, **headers})


def assert_still_serving(client: httpx.Client, receiver: HttpReceiver, storage: Client) -> None:
    before = stored_count(storage)
    body = realistic_request(8, seed=99).SerializeToString()
    reply = post(client, receiver.traces_url, body, PROTOBUF)
    assert reply.status_code == 200
    assert not ExportTraceServiceResponse.FromString(reply.content).HasField("partial_success")
    assert stored_count(storage) == before + 8


def export_with_sdk(endpoint: str, compression: Compression) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "http-sdk"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, compression=compression, timeout=10)
        )
    )
    tracer = provider.get_tracer("http.scope", "1.0")
    with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER, attributes={"n": 7}):
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "declined"))
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_http_exporter_spans_are_stored(
    http_receiver: HttpReceiver, storage: Client, compression: Compression
) -> None:
    sent = export_with_sdk(http_receiver.traces_url, compression)
    rows = storage.query(
        "SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, SpanAttributes, "
        "toUnixTimestamp64Nano(Timestamp), Duration, StatusCode, StatusMessage FROM otel_traces"
    ).result_rows
    expected = [
        [
            f"{span.context.trace_id:032x}",
            f"{span.context.span_id:016x}",
            f"{span.parent.span_id:016x}" if span.parent else "",
            span.name,
            span.kind.name.capitalize(),
            "http-sdk",
            {key: str(value) for key, value in span.attributes.items()},
            span.start_time,
            span.end_time - span.start_time,
            span.status.status_code.name.capitalize(),
            span.status.description or "",
        ]
        for span in sent
    ]
    assert len(sent) == 2
    assert sorted(map(list, rows)) == sorted(expected)


def restamped_golden(now_ns: int, path: Path = GOLDEN) -> tuple[bytes, dict]:
    """The golden request in ``path`` with its non-zero times moved to now (rows older than
    the TTL vanish), keeping each time's JSON type: string or number."""
    text = path.read_text()
    document = json.loads(text)
    shift = now_ns - GOLDEN_BASE_NS

    def move(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("UnixNano"):
                    moved = int(value) + shift if int(value) else 0
                    node[key] = str(moved) if isinstance(value, str) else moved
                else:
                    move(value)
        elif isinstance(node, list):
            for item in node:
                move(item)

    move(document)
    return json.dumps(document).encode(), document


def attribute_text(value: dict) -> str:
    """What the Collector's exporter stores for an OTLP/JSON AnyValue (the golden file's types)."""
    (kind, raw), = value.items()
    if kind == "boolValue":
        return "true" if raw else "false"
    if kind == "intValue":
        return str(int(raw))
    if kind == "arrayValue":
        items = [attribute_json(item) for item in raw["values"]]
        return json.dumps(items, separators=(",", ":"))
    return str(raw)


def attribute_json(value: dict) -> object:
    (kind, raw), = value.items()
    return int(raw) if kind == "intValue" else raw


def attributes(items: list[dict]) -> dict[str, str]:
    return {item["key"]: attribute_text(item["value"]) for item in items}


def expected_golden_rows(document: dict) -> set[tuple]:
    rows = set()
    for resource_spans in document["resourceSpans"]:
        resource = attributes(resource_spans["resource"]["attributes"])
        for scope_spans in resource_spans["scopeSpans"]:
            scope = scope_spans["scope"]
            for span in scope_spans["spans"]:
                start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
                events = span.get("events", [])
                links = span.get("links", [])
                rows.add((
                    span["traceId"].lower(),
                    span["spanId"].lower(),
                    span.get("parentSpanId", "").lower(),
                    span.get("traceState", ""),
                    span["name"],
                    SPAN_KINDS[span["kind"]],
                    resource["service.name"],
                    json.dumps(resource, sort_keys=True),
                    scope["name"],
                    scope["version"],
                    json.dumps(attributes(span["attributes"]), sort_keys=True),
                    start,
                    end - start,
                    STATUS_CODES[span["status"]["code"]],
                    span["status"].get("message", ""),
                    tuple(int(e["timeUnixNano"]) for e in events),
                    tuple(e["name"] for e in events),
                    json.dumps([attributes(e["attributes"]) for e in events], sort_keys=True),
                    tuple(link["traceId"].lower() for link in links),
                    tuple(link["spanId"].lower() for link in links),
                    tuple(link["traceState"] for link in links),
                ))
    return rows


GOLDEN_COLUMNS = (
    "TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName, "
    "ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, "
    "toUnixTimestamp64Nano(Timestamp), Duration, StatusCode, StatusMessage, "
    "arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name, Events.Attributes, "
    "Links.TraceId, Links.SpanId, Links.TraceState"
)


def stored_golden_rows(storage: Client) -> set[tuple]:
    rows = set()
    for row in storage.query(f"SELECT {GOLDEN_COLUMNS} FROM otel_traces").result_rows:
        row = list(row)
        for index in (7, 10):
            row[index] = json.dumps(row[index], sort_keys=True)
        row[17] = json.dumps(row[17], sort_keys=True)
        for index in (15, 16, 18, 19, 20):
            row[index] = tuple(row[index])
        rows.add(tuple(row))
    return rows


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_otlp_json_golden_request_is_stored_with_its_values(
    http_receiver: HttpReceiver, http_client: httpx.Client, storage: Client, gzipped: bool
) -> None:
    body, document = restamped_golden(time.time_ns())
    headers = {"content-encoding": "gzip"} if gzipped else {}
    sent = gzip.compress(body) if gzipped else body
    reply = post(
        http_client, http_receiver.traces_url, sent, "application/json; charset=utf-8", **headers
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith(JSON)
    assert reply.json() == {}
    assert stored_golden_rows(storage) == expected_golden_rows(document)


@pytest.mark.parametrize("media", [PROTOBUF, JSON])
def test_partial_success_in_the_response_body_in_the_request_encoding(
    http_receiver: HttpReceiver, http_client: httpx.Client, storage: Client, media: str
) -> None:
    request = realistic_request(10)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[3].trace_id = b"\x01\x02"
    body = request.SerializeToString()
    if media == JSON:
        document = json_format.MessageToDict(request)
        json_spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
        for span, sent in zip(json_spans, spans, strict=True):
            span["traceId"], span["spanId"] = sent.trace_id.hex(), sent.span_id.hex()
            span.pop("parentSpanId", None)
        body = json.dumps(document).encode()
    reply = post(http_client, http_receiver.traces_url, body, media)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == media
    response = (
        ExportTraceServiceResponse.FromString(reply.content)
        if media == PROTOBUF
        else json_format.Parse(reply.text, ExportTraceServiceResponse())
    )
    assert response.partial_success.rejected_spans == 1
    assert "trace_id must be 16 bytes" in response.partial_success.error_message
    assert stored_count(storage) == 9


def gzip_bomb(expanded_bytes: int) -> bytes:
    """Gzip members of zeros, ``expanded_bytes`` when inflated and ~1000x smaller sent."""
    member = gzip.compress(bytes(16 * 1024 * 1024), compresslevel=9)
    return member * (expanded_bytes // (16 * 1024 * 1024))


def status_of(reply: httpx.Response) -> status_pb2.Status:
    if reply.headers["content-type"] == PROTOBUF:
        return status_pb2.Status.FromString(reply.content)
    return json_format.Parse(reply.text, status_pb2.Status())


VALID = realistic_request(20, seed=5).SerializeToString()
ERROR_CASES = {
    "garbage-protobuf": (b"\xff\xff\xff\xff", PROTOBUF, {}, 400, code_pb2.INVALID_ARGUMENT),
    "truncated-protobuf": (VALID[:-7], PROTOBUF, {}, 400, code_pb2.INVALID_ARGUMENT),
    "not-json": (b"{\"resourceSpans\": [", JSON, {}, 400, code_pb2.INVALID_ARGUMENT),
    "json-array": (b"[]", JSON, {}, 400, code_pb2.INVALID_ARGUMENT),
    "json-wrong-type": (b'{"resourceSpans": 5}', JSON, {}, 400, code_pb2.INVALID_ARGUMENT),
    "json-base64-ids": (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA=="}]}]}]}',
        JSON, {}, 400, code_pb2.INVALID_ARGUMENT,
    ),
    "bad-gzip": (b"\x1f\x8b\x08\x00garbage", PROTOBUF, {"content-encoding": "gzip"}, 400,
                 code_pb2.INVALID_ARGUMENT),
    "truncated-gzip": (gzip.compress(VALID)[:-20], PROTOBUF, {"content-encoding": "gzip"}, 400,
                       code_pb2.INVALID_ARGUMENT),
    "oversize": (realistic_request(400).SerializeToString(), PROTOBUF, {}, 413,
                 code_pb2.RESOURCE_EXHAUSTED),
    "oversize-after-gunzip": (gzip.compress(realistic_request(400).SerializeToString()), JSON,
                              {"content-encoding": "gzip"}, 413, code_pb2.RESOURCE_EXHAUSTED),
    "unknown-content-type": (VALID, "text/plain", {}, 415, code_pb2.INVALID_ARGUMENT),
    "unknown-encoding": (VALID, PROTOBUF, {"content-encoding": "br"}, 415,
                         code_pb2.INVALID_ARGUMENT),
}


@pytest.mark.parametrize("case", ERROR_CASES, ids=list(ERROR_CASES))
def test_bad_requests_get_the_spec_codes_and_the_receiver_keeps_serving(
    start_http_receiver: StartHttpReceiver, http_client: httpx.Client, storage: Client, case: str
) -> None:
    body, media, headers, http_status, rpc_code = ERROR_CASES[case]
    receiver = start_http_receiver(max_request_bytes=128 * 1024)
    reply = post(http_client, receiver.traces_url, body, media, **headers)
    assert reply.status_code == http_status, reply.text
    assert reply.headers["content-type"] == (PROTOBUF if media == PROTOBUF else JSON)
    assert status_of(reply).code == rpc_code
    assert status_of(reply).message
    assert stored_count(storage) == 0
    assert_still_serving(http_client, receiver, storage)


def test_gzip_bomb_is_413_without_inflating_it(
    start_http_receiver: StartHttpReceiver, http_client: httpx.Client, storage: Client
) -> None:
    """1 GiB of zeros in ~1 MiB of gzip, under a 2 MiB limit: inflating stops at the limit, so
    the process peak grows by far less than the bomb (bound: 64 MiB)."""
    receiver = start_http_receiver(max_request_bytes=2 * 1024 * 1024)
    bomb = gzip_bomb(1 << 30)
    assert len(bomb) < 2 * 1024 * 1024
    peak_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reply = post(http_client, receiver.traces_url, bomb, PROTOBUF, **{"content-encoding": "gzip"})
    peak_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kib
    assert reply.status_code == 413
    assert status_of(reply).code == code_pb2.RESOURCE_EXHAUSTED
    assert peak_growth_kib < 64 * 1024
    assert_still_serving(http_client, receiver, storage)


def test_storage_failure_is_503_with_retry_after_and_nothing_acknowledged(
    http_receiver: HttpReceiver, http_client: httpx.Client, storage: Client
) -> None:
    storage.command("DETACH TABLE otel_traces")
    try:
        reply = post(http_client, http_receiver.traces_url, VALID, PROTOBUF)
    finally:
        storage.command("ATTACH TABLE otel_traces")
    assert reply.status_code == 503
    assert 1 <= int(reply.headers["retry-after"]) <= 2
    status = status_of(reply)
    assert status.code == code_pb2.UNAVAILABLE and "storage unavailable" in status.message
    info = RetryInfo()
    assert status.details[0].Unpack(info) and info.retry_delay.seconds == 1
    assert stored_count(storage) == 0
    assert_still_serving(http_client, http_receiver, storage)


def test_only_post_on_the_signal_paths(
    http_receiver: HttpReceiver, http_client: httpx.Client
) -> None:
    assert http_client.get(http_receiver.traces_url).status_code == 405
    assert http_client.get(f"{http_receiver.url}/v1/logs").status_code == 405
    assert post(http_client, f"{http_receiver.url}/v1/logs", b"", PROTOBUF).status_code == 200
    assert http_client.get(f"{http_receiver.url}/v1/metrics").status_code == 405
    assert post(http_client, f"{http_receiver.url}/v1/metrics", b"", PROTOBUF).status_code == 200
    assert post(http_client, f"{http_receiver.url}/v1/profiles", b"", PROTOBUF).status_code == 404
