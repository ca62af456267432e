"""``POST /api/v1/logs``: JSON log records through the logs pipeline into ``otel_logs``.

Each test posts to the query API served on the receiver's event loop (as ``serve`` composes
them) and reads the rows back from the table; expected rows are computed here from what was
sent, by the rules the API documents, not by the module under test.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from tests.conftest import IngestApi
from tests.query.hostile import INJECTION_CORPUS

NOW_S = int(time.time()) - 60
"""A whole second a minute ago: recent enough to outlive the table's TTL."""
NOW_RFC3339 = datetime.fromtimestamp(NOW_S, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
TRACE_ID = "5B8EFFF798038103D269B633813FC60C"
SPAN_ID = "EEE19B7EC3C1B174"
NDJSON = "application/x-ndjson"
COLUMNS = (
    "toUnixTimestamp64Nano(Timestamp) AS Timestamp, SeverityText, SeverityNumber, Body, "
    "ServiceName, ResourceAttributes, TraceId, SpanId, LogAttributes"
)


@pytest.fixture
def api(start_ingest_api: Callable[..., IngestApi]) -> IngestApi:
    return start_ingest_api()


@pytest.fixture
def client() -> Any:
    with httpx.Client(timeout=30) as http:
        yield http


def post(client: httpx.Client, api: IngestApi, body: object, **headers: str) -> httpx.Response:
    """``body`` as JSON with ASCII escapes (lone surrogates included), or sent as is when
    bytes, with the given headers."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers = {"content-type": "application/json", **headers}
    return client.post(f"{api.url}/api/v1/logs", content=body, headers=headers)


def stored_rows(storage: Client, where: str = "1") -> list[dict[str, Any]]:
    sql = f"SELECT {COLUMNS} FROM otel_logs WHERE {where} ORDER BY Timestamp, Body"
    return list(storage.query(sql).named_results())


def stored_count(storage: Client) -> int:
    return storage.query("SELECT count() FROM otel_logs").result_rows[0][0]


def rendered(value: object) -> str:
    """An attribute value (or non-string body) as OTLP attributes are stored."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


SEVERITY = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17,
            "fatal": 21, "critical": 21}


def expected_row(record: dict[str, Any], timestamp_ns: int) -> dict[str, Any]:
    level = record.get("level", record.get("severity"))
    service = record.get("service")
    attributes = record.get("attributes", record.get("metadata", {}))
    return {
        "Timestamp": timestamp_ns,
        "SeverityText": level or "",
        "SeverityNumber": SEVERITY[level.lower()] if level else 0,
        "Body": rendered(record["message"]),
        "ServiceName": service or "",
        "ResourceAttributes": {"service.name": service} if service is not None else {},
        "TraceId": record.get("trace_id", "").lower(),
        "SpanId": record.get("span_id", "").lower(),
        "LogAttributes": {key: rendered(value) for key, value in attributes.items()},
    }


ACCEPTED: list[tuple[str, dict[str, Any], int]] = [
    (
        "every field",
        {
            "timestamp": f"{NOW_RFC3339}.123456789Z",
            "level": "error",
            "message": "payment declined",
            "service": "checkout",
            "trace_id": TRACE_ID,
            "span_id": SPAN_ID,
            "attributes": {
                "user.id": "u-1",
                "attempt": 3,
                "ratio": 0.25,
                "retry": False,
                "tags": ["a", 1, None],
                "card": {"brand": "visa", "last4": "4242"},
                "none": None,
            },
        },
        NOW_S * 10**9 + 123_456_789,
    ),
    ("minimal", {"message": "hi", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("epoch ms", {"message": "ms", "timestamp": NOW_S * 1000 + 7}, NOW_S * 10**9 + 7_000_000),
    ("epoch ms fraction", {"message": "msf", "timestamp": NOW_S * 1000 + 0.5}, NOW_S * 10**9 + 500_000),
    ("epoch ns", {"message": "ns", "timestamp": NOW_S * 10**9 + 42}, NOW_S * 10**9 + 42),
    ("offset", {"message": "tz", "timestamp": f"{NOW_RFC3339}+02:00"}, (NOW_S - 7200) * 10**9),
    ("fraction ms", {"message": "f", "timestamp": f"{NOW_RFC3339}.5Z"}, NOW_S * 10**9 + 500_000_000),
    ("fraction past ns", {"message": "f", "timestamp": f"{NOW_RFC3339}.1234567891Z"}, NOW_S * 10**9 + 123_456_789),
    ("severity upper", {"message": "s", "severity": "WARNING", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("level mixed", {"message": "s", "level": "Critical", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("trace", {"message": "s", "level": "trace", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("debug", {"message": "s", "level": "debug", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("info", {"message": "s", "level": "info", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("warn", {"message": "s", "level": "warn", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("fatal", {"message": "s", "level": "FATAL", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("metadata", {"message": "m", "metadata": {"k": "v", "n": -5}, "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("lower-case ids", {"message": "i", "trace_id": TRACE_ID.lower(), "span_id": SPAN_ID.lower(), "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("object message", {"message": {"event": "login", "ok": True}, "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("number message", {"message": 42, "timestamp": NOW_S * 1000}, NOW_S * 10**9),
    ("empty service", {"message": "e", "service": "", "timestamp": NOW_S * 1000}, NOW_S * 10**9),
]


@pytest.mark.parametrize(("record", "timestamp_ns"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_a_valid_record_is_stored_with_its_values(
    api: IngestApi, client: httpx.Client, storage: Client, record: dict[str, Any], timestamp_ns: int
) -> None:
    reply = post(client, api, record)
    assert reply.status_code == 202, reply.text
    assert reply.json() == {"accepted": 1, "rejected": 0, "errors": [], "warning": ""}
    assert stored_rows(storage) == [expected_row(record, timestamp_ns)]


def test_a_record_without_timestamp_is_stamped_on_arrival(
    api: IngestApi, client: httpx.Client, storage: Client
) -> None:
    before = time.time_ns()
    assert post(client, api, {"message": "now"}).status_code == 202
    after = time.time_ns()
    [row] = stored_rows(storage)
    assert before <= row["Timestamp"] <= after


REFUSED: list[tuple[str, object, str, str]] = [
    ("no message", {"level": "info"}, "message", "required"),
    ("null message", {"message": None}, "message", "required"),
    ("not an object", "just text", "", "must be a JSON object"),
    ("unknown field", {"message": "m", "msg": "x"}, "msg", "unknown field"),
    ("unknown level", {"message": "m", "level": "notice"}, "level", "unknown level"),
    ("level not text", {"message": "m", "severity": 9}, "severity", "must be a string"),
    ("level and severity", {"message": "m", "level": "info", "severity": "info"}, "severity", "not both"),
    ("attributes and metadata", {"message": "m", "attributes": {}, "metadata": {}}, "metadata", "not both"),
    ("attributes not object", {"message": "m", "attributes": ["a"]}, "attributes", "must be an object"),
    ("service not text", {"message": "m", "service": 1}, "service", "must be a string"),
    ("short trace id", {"message": "m", "trace_id": TRACE_ID[:-1]}, "trace_id", "32 hex digits"),
    ("non-hex trace id", {"message": "m", "trace_id": "z" * 32}, "trace_id", "32 hex digits"),
    ("long span id", {"message": "m", "span_id": SPAN_ID + "00"}, "span_id", "16 hex digits"),
    ("span id not text", {"message": "m", "span_id": 12}, "span_id", "16 hex digits"),
    ("naive time", {"message": "m", "timestamp": NOW_RFC3339}, "timestamp", "RFC 3339"),
    ("bad date", {"message": "m", "timestamp": "2026-02-30T00:00:00Z"}, "timestamp", "not a valid"),
    ("time text", {"message": "m", "timestamp": "yesterday"}, "timestamp", "RFC 3339"),
    ("time bool", {"message": "m", "timestamp": True}, "timestamp", "string or a number"),
    ("negative time", {"message": "m", "timestamp": -1}, "timestamp", "after 1970"),
    ("zero time", {"message": "m", "timestamp": 0}, "timestamp", "after 1970"),
    ("time past 2262", {"message": "m", "timestamp": "2300-01-01T00:00:00Z"}, "timestamp", "2262"),
    ("lone surrogate", {"message": "\ud800"}, "message", "surrogate"),
]


@pytest.mark.parametrize(
    ("record", "field", "error"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_an_invalid_record_is_422_naming_its_index_and_field(
    api: IngestApi, client: httpx.Client, storage: Client, record: object, field: str, error: str
) -> None:
    reply = post(client, api, record)
    assert reply.status_code == 422, reply.text
    answer = reply.json()
    assert (answer["accepted"], answer["rejected"]) == (0, 1)
    [problem] = answer["errors"]
    assert (problem["index"], problem["field"]) == (0, field)
    assert error in problem["error"]
    assert stored_count(storage) == 0


def test_an_array_stores_its_valid_records_and_reports_the_others(
    api: IngestApi, client: httpx.Client, storage: Client
) -> None:
    records: list[object] = [
        {"message": f"ok {i}", "timestamp": NOW_S * 1000 + i, "service": "batch"} for i in range(5)
    ]
    records[1] = {"message": "bad", "trace_id": "nope"}
    records[3] = 7
    reply = post(client, api, records)
    assert reply.status_code == 202, reply.text
    answer = reply.json()
    assert (answer["accepted"], answer["rejected"]) == (3, 2)
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(1, "trace_id"), (3, "")]
    expected = [expected_row(records[i], NOW_S * 10**9 + i * 10**6) for i in (0, 2, 4)]
    assert stored_rows(storage) == expected


def test_ndjson_bulk_stores_valid_lines_and_reports_bad_ones(
    api: IngestApi, client: httpx.Client, storage: Client
) -> None:
    records = [
        {"message": f"line {i}", "level": "info", "timestamp": NOW_S * 10**9 + i, "metadata": {"i": i}}
        for i in range(2000)
    ]
    lines = [json.dumps(record) for record in records]
    lines[10] = "{not json"
    lines[20] = json.dumps({"message": "x", "level": "loud"})
    body = ("\n".join(lines[:500]) + "\n\n  \n" + "\n".join(lines[500:]) + "\n").encode()
    reply = post(client, api, body, **{"content-type": NDJSON})
    assert reply.status_code == 202, reply.text
    answer = reply.json()
    assert (answer["accepted"], answer["rejected"]) == (1998, 2)
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(10, ""), (20, "level")]
    assert "not JSON" in answer["errors"][0]["error"]
    expected = [expected_row(r, r["timestamp"]) for i, r in enumerate(records) if i not in (10, 20)]
    assert stored_rows(storage) == expected


def test_gzip_bodies_are_accepted(api: IngestApi, client: httpx.Client, storage: Client) -> None:
    record = {"message": "zipped", "timestamp": NOW_S * 1000}
    body = gzip.compress(json.dumps(record).encode())
    reply = post(client, api, body, **{"content-type": "application/json", "content-encoding": "gzip"})
    assert reply.status_code == 202, reply.text
    assert stored_rows(storage) == [expected_row(record, NOW_S * 10**9)]


@pytest.mark.parametrize(
    ("body", "media", "status"),
    [
        (b"", "application/json", 422),
        (b"[]", "application/json", 422),
        (b"\n \n", NDJSON, 422),
        (b"", NDJSON, 422),
        (b"{not json", "application/json", 422),
        (b"[" * 100_000, "application/json", 422),
        (b'{"message": NaN}', "application/json", 422),
        (b"\xff\xfe", "application/json", 422),
        (b'{"message": "m"}', "text/plain", 415),
        (b'{"message": "m"}', "", 415),
    ],
    ids=["empty", "empty array", "blank lines", "empty ndjson", "not json", "deep", "nan",
         "not utf-8", "text", "no type"],
)
def test_bodies_without_a_record_are_refused_and_nothing_is_stored(
    api: IngestApi, client: httpx.Client, storage: Client, body: bytes, media: str, status: int
) -> None:
    reply = post(client, api, body, **{"content-type": media})
    assert reply.status_code == status, reply.text
    assert reply.json()["detail"]
    assert stored_count(storage) == 0
    assert post(client, api, {"message": "still serving"}).status_code == 202


def test_every_record_invalid_is_422_listing_each(
    api: IngestApi, client: httpx.Client, storage: Client
) -> None:
    reply = post(client, api, [{"message": "m", "span_id": "x"}, {"level": "info"}])
    assert reply.status_code == 422
    answer = reply.json()
    assert (answer["accepted"], answer["rejected"]) == (0, 2)
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(0, "span_id"), (1, "message")]
    assert stored_count(storage) == 0


def test_bearer_tokens_of_the_api_apply(
    start_ingest_api: Callable[..., IngestApi], client: httpx.Client, storage: Client
) -> None:
    api = start_ingest_api(api_tokens="secret,other")
    record = {"message": "authed", "timestamp": NOW_S * 1000}
    assert post(client, api, record).status_code == 401
    assert post(client, api, record, authorization="Bearer wrong").status_code == 401
    assert stored_count(storage) == 0
    assert post(client, api, record, authorization="Bearer other").status_code == 202
    assert stored_rows(storage) == [expected_row(record, NOW_S * 10**9)]


def test_bodies_over_max_request_bytes_are_413(
    start_ingest_api: Callable[..., IngestApi], client: httpx.Client, storage: Client
) -> None:
    api = start_ingest_api(max_request_bytes=4096)
    big = [{"message": "x" * 100, "timestamp": NOW_S * 1000}] * 60
    assert post(client, api, big).status_code == 413
    chunked = client.post(
        f"{api.url}/api/v1/logs",
        content=iter([json.dumps(big).encode()[i : i + 1000] for i in range(0, 8000, 1000)]),
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
    reply = post(client, api, bomb, **{"content-type": "application/json", "content-encoding": "gzip"})
    assert reply.status_code == 413
    assert stored_count(storage) == 0
    assert post(client, api, big[:10]).status_code == 202
    assert stored_count(storage) == 10


def test_a_closed_pipeline_is_503_with_retry_after(
    api: IngestApi, client: httpx.Client, storage: Client
) -> None:
    api.thread.call(api.thread.logs.batcher.stop())
    reply = post(client, api, {"message": "late"})
    assert reply.status_code == 503
    assert int(reply.headers["retry-after"]) >= 1
    assert stored_count(storage) == 0


def test_the_logs_pipeline_counts_json_records(
    api: IngestApi, client: httpx.Client, storage: Client
) -> None:
    post(client, api, [{"message": "a"}, {"message": "b"}, {"nope": 1}])
    stats = api.thread.logs.stats
    assert (stats.requests, stats.received, stats.stored, stats.rejected) == (1, 3, 2, 1)
    assert api.thread.receiver.health()["log_records_stored"] == 2


FIELDS_OF_TEXT = ("message", "service", "level", "trace_id", "span_id", "timestamp")


@pytest.mark.parametrize("text", INJECTION_CORPUS, ids=range(len(INJECTION_CORPUS)))
def test_hostile_strings_in_every_field_are_stored_verbatim_or_refused(
    start_ingest_api: Callable[..., IngestApi], client: httpx.Client, storage: Client, text: str
) -> None:
    api = start_ingest_api(max_attribute_value_bytes=2 * 1024**2)
    records = [{"message": "base", "timestamp": NOW_S * 1000 + i} for i in range(len(FIELDS_OF_TEXT))]
    for record, field in zip(records, FIELDS_OF_TEXT):
        record[field] = text
    records.append({"message": text, "attributes": {text: text}, "timestamp": NOW_S * 1000 + 9})
    reply = post(client, api, records)
    assert reply.status_code == 202, reply.text[:300]
    refused = {e["field"] for e in reply.json()["errors"]}
    assert refused == {"level", "trace_id", "span_id", "timestamp"}
    assert stored_rows(storage) == [
        expected_row(records[0], NOW_S * 10**9),
        expected_row(records[1], NOW_S * 10**9 + 10**6),
        expected_row(records[-1], NOW_S * 10**9 + 9 * 10**6),
    ]


def test_a_posted_record_is_found_by_the_logs_search(
    api: IngestApi, client: httpx.Client, storage: Client
) -> None:
    record = {
        "message": "disk almost full",
        "level": "warn",
        "service": "storage-node",
        "trace_id": TRACE_ID,
        "timestamp": f"{NOW_RFC3339}Z",
        "attributes": {"disk": "/dev/sda1"},
    }
    assert post(client, api, record).status_code == 202
    found = client.get(
        f"{api.url}/api/v1/logs",
        params={"service": "storage-node", "q": "almost", "severity": "warn", "since": "1h"},
    )
    assert found.status_code == 200, found.text
    [log] = found.json()["logs"]
    assert (log["body"], log["severity_text"], log["severity_number"]) == ("disk almost full", "warn", 13)
    assert (log["trace_id"], log["attributes"]) == (TRACE_ID.lower(), {"disk": "/dev/sda1"})
    assert log["timestamp_unix_nano"] == NOW_S * 10**9
