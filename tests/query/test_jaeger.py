"""``/jaeger/api``: Jaeger's JSON model field by field (µs units, references, processes, typed
tags, logs), its search semantics and error envelope, against expectations computed from the
sent spans; one end-to-end run from the real OTel SDK through the real receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelhouse.query.jaeger_model import tag
from otelhouse.query.jaeger_params import BadParameter, parse_duration
from otelhouse.storage.tables import TRACES_TABLE
from tests.conftest import ReceiverThread
from tests.query.hostile import (  # noqa: F401 - long_urls is a fixture
    INJECTION_CORPUS,
    insert_corpus,
    long_urls,
)
from tests.query.sdk_traces import send_shop_trace
from tests.query.trace_builder import SpanSpec, by_trace, insert_shop

# The type each attribute of the generated traces must be shown with.
TAG_TYPES = {
    "customer.tier": ("string", str),
    "retry.count": ("int64", int),
    "ratio": ("float64", float),
    "cached": ("bool", lambda v: v == "true"),
    "http.response.status_code": ("int64", int),
    "key.length": ("int64", int),
    "exception.type": ("string", str),
    "exception.message": ("string", str),
    "host.name": ("string", str),
    "http.route": ("string", str),
    "process.pid": ("int64", int),
}


@pytest.fixture
def shop(storage: Client) -> list[SpanSpec]:
    return insert_shop(storage)


def typed(attributes: dict[str, str]) -> list[dict[str, Any]]:
    result = []
    for key in sorted(attributes):
        kind, convert = TAG_TYPES[key]
        result.append({"key": key, "type": kind, "value": convert(attributes[key])})
    return result


def derived_tags(spec: SpanSpec) -> list[dict[str, Any]]:
    """The tags Jaeger's OTLP translation adds, in otelhouse's documented order."""
    result = []
    if spec.kind != "Unspecified":
        result.append({"key": "span.kind", "type": "string", "value": spec.kind.lower()})
    if spec.status_code != "Unset":
        status = spec.status_code.upper()
        result.append({"key": "otel.status_code", "type": "string", "value": status})
    if spec.is_error:
        result.append({"key": "error", "type": "bool", "value": True})
    for key, value in (
        ("otel.status_description", spec.status_message),
        ("otel.scope.name", spec.scope_name),
        ("otel.scope.version", spec.scope_version),
        ("w3c.tracestate", spec.trace_state),
    ):
        if value:
            result.append({"key": key, "type": "string", "value": value})
    return result


def expected_span(spec: SpanSpec) -> dict[str, Any]:
    parent = (
        [{"refType": "CHILD_OF", "traceID": spec.trace_id, "spanID": spec.parent_span_id}]
        if spec.parent_span_id
        else []
    )
    return {
        "traceID": spec.trace_id,
        "spanID": spec.span_id,
        "flags": 1,
        "operationName": spec.name,
        "references": parent
        + [{"refType": "FOLLOWS_FROM", "traceID": t, "spanID": s} for t, s, _, _ in spec.links],
        "startTime": spec.start_ns // 1000,
        "duration": spec.duration_ns // 1000,
        "tags": typed(spec.attributes) + derived_tags(spec),
        "logs": [
            {
                "timestamp": ns // 1000,
                "fields": [{"key": "event", "type": "string", "value": name}, *typed(attrs)],
            }
            for ns, name, attrs in spec.events
        ],
        "warnings": None,
    }


def check_trace(trace: dict[str, Any], specs: list[SpanSpec]) -> None:
    """``trace`` is exactly ``specs`` in Jaeger's model."""
    assert trace["traceID"] == specs[0].trace_id
    assert trace["warnings"] is None
    spans = trace["spans"]
    assert [{k: v for k, v in s.items() if k != "processID"} for s in spans] == [
        expected_span(spec) for spec in specs
    ]
    processes = trace["processes"]
    expected_processes = {(s.service, tuple(sorted(s.resource.items()))) for s in specs}
    assert len(processes) == len(expected_processes)
    assert sorted(processes) == [f"p{i + 1}" for i in range(len(processes))]
    for span, spec in zip(spans, specs, strict=True):
        process = processes[span["processID"]]
        assert process == {"serviceName": spec.service, "tags": typed(spec.resource)}


def envelope_errors(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert body["data"] is None
    return body["errors"]


def test_trace_by_id_in_jaeger_model(api: TestClient, shop: list[SpanSpec]) -> None:
    for trace_id, specs in by_trace(shop).items():
        response = api.get(f"/jaeger/api/traces/{trace_id}")
        assert response.status_code == 200
        body = response.json()
        assert (body["total"], body["limit"], body["offset"], body["errors"]) == (1, 0, 0, None)
        assert len(body["data"]) == 1
        check_trace(body["data"][0], specs)


@pytest.mark.parametrize(
    ("trace_id", "status"),
    [("ab" * 16, 404), ("12345", 404), ("xyz", 400), ("g" * 32, 400), ("a" * 33, 400)],
)
def test_trace_by_id_errors(
    api: TestClient, shop: list[SpanSpec], trace_id: str, status: int
) -> None:
    response = api.get(f"/jaeger/api/traces/{trace_id}")
    assert response.status_code == status
    [error] = envelope_errors(response)
    assert error["code"] == status and error["msg"]


def test_services_and_operations(api: TestClient, storage: Client, shop: list[SpanSpec]) -> None:
    everything = storage.query(
        f"SELECT ServiceName, SpanName, SpanKind FROM {TRACES_TABLE}"
    ).result_rows  # the old trace is there too; services are listed over all retention
    assert len(everything) > len(shop)
    body = api.get("/jaeger/api/services").json()
    assert body["data"] == sorted({row[0] for row in everything})
    assert body["total"] == len(body["data"])
    for service in body["data"]:
        names = api.get(f"/jaeger/api/services/{quote(service)}/operations").json()["data"]
        assert names == sorted({name for s, name, _ in everything if s == service})
        pairs = api.get("/jaeger/api/operations", params={"service": service}).json()["data"]
        assert sorted((p["name"], p["spanKind"]) for p in pairs) == sorted(
            {(n, "" if k == "Unspecified" else k.lower()) for s, n, k in everything if s == service}
        )
        servers = api.get(
            "/jaeger/api/operations", params={"service": service, "spanKind": "server"}
        ).json()["data"]
        assert servers == [
            {"name": n, "spanKind": "server"}
            for n in sorted({n for s, n, k in everything if s == service and k == "Server"})
        ]


SpanTest = Callable[[SpanSpec], bool]


def attribute_or_resource(key: str, value: str) -> SpanTest:
    return lambda s: s.attributes.get(key, s.resource.get(key)) == value


SEARCHES: list[tuple[dict[str, str], SpanTest]] = [
    ({"service": "cart"}, lambda s: s.service == "cart"),
    (
        {"service": "payment", "operation": "charge"},
        lambda s: s.service == "payment" and s.name == "charge",
    ),
    (
        {"tags": json.dumps({"customer.tier": "gold", "cached": True})},
        lambda s: s.attributes["customer.tier"] == "gold" and s.attributes["cached"] == "true",
    ),
    (
        {"service": "inventory", "tags": json.dumps({"error": "true"})},
        lambda s: s.service == "inventory" and s.is_error,
    ),
    ({"tags": json.dumps({"span.kind": "client"})}, lambda s: s.kind == "Client"),
    ({"tags": json.dumps({"host.name": "host-1"})}, attribute_or_resource("host.name", "host-1")),
    ({"tag": "retry.count:3"}, attribute_or_resource("retry.count", "3")),
    ({"tags": json.dumps({"http.route": "/cart"})}, attribute_or_resource("http.route", "/cart")),
    (
        {"service": "frontend", "minDuration": "100ms", "maxDuration": "0.5s"},
        lambda s: s.service == "frontend" and 100_000_000 <= s.duration_ns <= 500_000_000,
    ),
    ({"minDuration": "1m30s"}, lambda s: s.duration_ns >= 90 * 10**9),
]


def test_search_matches_one_span_with_every_condition(
    api: TestClient, shop: list[SpanSpec]
) -> None:
    traces = by_trace(shop)
    now_us = time.time_ns() // 1000
    lo_us = min(s.start_ns for s in shop) // 1000 + 5 * 60 * 10**6
    for params, test in SEARCHES:
        for window in (
            {"lookback": "1h"},
            {"start": str(lo_us), "end": str(now_us), "lookback": "custom"},
        ):
            lo = int(window.get("start", 0)) * 1000
            hits = {
                tid: max(s.start_ns for s in t if test(s) and s.start_ns >= lo)
                for tid, t in traces.items()
                if any(test(s) and s.start_ns >= lo for s in t)
            }
            expected = sorted(hits, key=lambda tid: (-hits[tid], tid))
            response = api.get("/jaeger/api/traces", params={**params, **window, "limit": "1500"})
            assert response.status_code == 200, (params, response.text)
            data = response.json()["data"]
            assert [t["traceID"] for t in data] == expected, (params, window)
            for trace in data:
                check_trace(trace, traces[trace["traceID"]])
        assert 0 < len(expected) < len(traces) or params == {"minDuration": "1m30s"}, params


def test_search_limit_lookback_and_trace_ids(api: TestClient, shop: list[SpanSpec]) -> None:
    traces = by_trace(shop)
    newest = sorted(traces, key=lambda tid: (-max(s.start_ns for s in traces[tid]), tid))
    limited = api.get("/jaeger/api/traces", params={"limit": "5"}).json()["data"]
    assert [t["traceID"] for t in limited] == newest[:5]
    assert len(api.get("/jaeger/api/traces").json()["data"]) == 20
    wide = api.get("/jaeger/api/traces", params={"lookback": "6h", "limit": "100"}).json()
    assert len(wide["data"]) == len(traces) + 1
    picked = [newest[3], newest[0].upper(), "ab" * 16]
    by_id = api.get("/jaeger/api/traces", params={"traceID": picked}).json()["data"]
    assert [t["traceID"] for t in by_id] == [newest[3], newest[0]]


MALFORMED: list[tuple[str, dict[str, str], str, str]] = [
    ("/jaeger/api/traces", {"minDuration": "abc"}, "minDuration", "such as 100ms"),
    ("/jaeger/api/traces", {"maxDuration": "-1s"}, "maxDuration", "such as 100ms"),
    ("/jaeger/api/traces", {"maxDuration": "3d"}, "maxDuration", "such as 100ms"),
    ("/jaeger/api/traces", {"minDuration": "2s", "maxDuration": "1s"}, "maxDuration", "shorter"),
    ("/jaeger/api/traces", {"tags": "not json"}, "tags", "JSON object"),
    ("/jaeger/api/traces", {"tags": "[1]"}, "tags", "JSON object"),
    ("/jaeger/api/traces", {"tags": '{"a": {"b": 1}}'}, "tags", "string, number or bool"),
    ("/jaeger/api/traces", {"tags": '{"error": "maybe"}'}, "tags", "true or false"),
    ("/jaeger/api/traces", {"tags": '{"span.kind": "sideways"}'}, "tags", "server"),
    ("/jaeger/api/traces", {"tag": "no-colon"}, "tag", "key:value"),
    ("/jaeger/api/traces", {"limit": "-1"}, "limit", "positive integer"),
    ("/jaeger/api/traces", {"limit": "ten"}, "limit", "positive integer"),
    ("/jaeger/api/traces", {"start": "yesterday"}, "start", "epoch microseconds"),
    ("/jaeger/api/traces", {"end": "1.5"}, "end", "epoch microseconds"),
    ("/jaeger/api/traces", {"start": "2000", "end": "1000"}, "start", "before end"),
    ("/jaeger/api/traces", {"lookback": "forever"}, "lookback", "1h"),
    ("/jaeger/api/traces", {"lookback": "90d"}, "start", "31 days"),
    ("/jaeger/api/traces", {"traceID": "zz"}, "traceID", "hexadecimal"),
    ("/jaeger/api/traces/xyz", {}, "traceID", "hexadecimal"),
    ("/jaeger/api/operations", {}, "service", "required"),
    ("/jaeger/api/operations", {"service": ""}, "service", "at least 1 character"),
    ("/jaeger/api/operations", {"service": "cart", "spanKind": "Server"}, "spanKind", "'server'"),
]


@pytest.mark.parametrize(("path", "params", "parameter", "expected"), MALFORMED)
def test_malformed_parameters_answer_400_in_the_envelope(
    api: TestClient, path: str, params: dict[str, str], parameter: str, expected: str
) -> None:
    response = api.get(path, params=params)
    assert response.status_code == 400
    assert {k: v for k, v in response.json().items() if k != "errors"} == {
        "data": None, "total": 0, "limit": 0, "offset": 0
    }
    [error] = envelope_errors(response)
    assert error["code"] == 400
    assert error["msg"].startswith(f"{parameter}: ")
    assert expected in error["msg"]


def test_every_malformed_parameter_is_reported_and_only_jaeger_changes_the_status(
    api: TestClient, storage: Client
) -> None:
    response = api.get("/jaeger/api/operations", params={"spanKind": "sideways"})
    assert response.status_code == 400
    assert [e["msg"].split(":")[0] for e in envelope_errors(response)] == ["service", "spanKind"]
    assert {e["code"] for e in envelope_errors(response)} == {400}
    native = api.get("/api/v1/services", params={"since": "soon"})
    assert native.status_code == 422
    assert native.json()["detail"][0]["loc"] == ["query", "since"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", ("bool", True)),
        ("false", ("bool", False)),
        ("True", ("string", "True")),
        ("0", ("int64", 0)),
        ("-42", ("int64", -42)),
        ("9223372036854775807", ("int64", 2**63 - 1)),
        ("9223372036854775808", ("string", "9223372036854775808")),
        ("-9223372036854775808", ("int64", -(2**63))),
        ("007", ("string", "007")),
        ("-0", ("string", "-0")),
        ("1.5", ("float64", 1.5)),
        ("-2e-05", ("float64", -2e-05)),
        ("1e+21", ("float64", 1e21)),
        ("1e999", ("string", "1e999")),
        ("NaN", ("string", "NaN")),
        ("+Inf", ("string", "+Inf")),
        ("1.", ("string", "1.")),
        ("", ("string", "")),
        ('["a",1]', ("string", '["a",1]')),
    ],
)
def test_tag_types_are_inferred_from_stored_strings(value: str, expected: tuple) -> None:
    assert tag("k", value) == {"key": "k", "type": expected[0], "value": expected[1]}


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("100ms", 100_000_000),
        ("1.5s", 1_500_000_000),
        ("1m30s", 90_000_000_000),
        ("250us", 250_000),
        ("250µs", 250_000),
        ("2h", 7_200_000_000_000),
        (".5ms", 500_000),
        ("7ns", 7),
    ],
)
def test_go_durations(text: str, ns: int) -> None:
    assert parse_duration(text, "minDuration") == ns


@pytest.mark.parametrize("text", ["", "1", "ms", "-1s", "1d", "1.5.2s", "1 s", "9" * 70 + "h"])
def test_go_durations_rejected(text: str) -> None:
    with pytest.raises(BadParameter, match="^minDuration: "):
        parse_duration(text, "minDuration")


def test_injection_corpus_is_matched_literally(
    api: TestClient, storage: Client, long_urls: None
) -> None:
    specs = insert_corpus(storage)
    assert api.get("/jaeger/api/services").json()["data"] == sorted(INJECTION_CORPUS)
    for spec in specs:
        text = spec.name
        names = api.get(f"/jaeger/api/services/{quote(text, safe='')}/operations").json()
        assert names["data"] == [text]
        pairs = api.get("/jaeger/api/operations", params={"service": text}).json()["data"]
        assert pairs == [{"name": text, "spanKind": "server"}]
        for params in (
            {"service": text},
            {"operation": text},
            {"tags": json.dumps({"k": text})},
            {"tag": f"k:{text}"},
            {"service": text, "operation": text, "tags": json.dumps({"k": text})},
        ):
            response = api.get("/jaeger/api/traces", params=params)
            assert response.status_code == 200, (text[:20], response.text[:200])
            assert [t["traceID"] for t in response.json()["data"]] == [spec.trace_id]
        for parameter in ("minDuration", "start", "end", "lookback", "limit", "traceID"):
            response = api.get("/jaeger/api/traces", params={parameter: text})
            assert response.status_code == 400, (parameter, text[:20])
        response = api.get(f"/jaeger/api/traces/{quote(text, safe='')}")
        assert response.status_code in (400, 404), text[:20]
        response = api.get(f"/jaeger/api/traces/{spec.trace_id.lstrip('0')}")
        assert response.json()["data"][0]["spans"][0]["operationName"] == text


def test_sdk_trace_as_a_jaeger_waterfall(api: TestClient, receiver: ReceiverThread) -> None:
    """What Grafana and Jaeger UI need to draw the waterfall of a real SDK trace: the same
    spans and timings as the native API, nested by CHILD_OF, processes per service."""
    sent = send_shop_trace(receiver.endpoint)
    trace_id = sent[0].trace_id
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = api.get(f"/jaeger/api/traces/{trace_id}")
        if response.status_code == 200 and len(response.json()["data"][0]["spans"]) == len(sent):
            break
        time.sleep(0.05)
    [trace] = response.json()["data"]
    spans = {s["operationName"]: s for s in trace["spans"]}
    root, render, charge = spans["POST /checkout"], spans["render cart"], spans["charge"]
    assert root["references"] == []
    assert render["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": root["spanID"]}
    ]
    assert charge["references"] == [
        {"refType": "CHILD_OF", "traceID": trace_id, "spanID": root["spanID"]},
        {"refType": "FOLLOWS_FROM", "traceID": trace_id, "spanID": root["spanID"]},
    ]
    services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    assert services == {"p1": "storefront", "p2": "checkout"}
    assert [services[s["processID"]] for s in (root, render, charge)] == [
        "storefront", "storefront", "checkout"
    ]
    assert trace["processes"]["p2"]["tags"] == [
        {"key": "deployment.environment", "type": "string", "value": "test"}
    ]
    root_tags = {t["key"]: (t["type"], t["value"]) for t in root["tags"]}
    assert root_tags["http.response.status_code"] == ("int64", 502)
    assert root_tags["error"] == ("bool", True)
    charge_tags = {t["key"]: (t["type"], t["value"]) for t in charge["tags"]}
    assert charge_tags["retry"] == ("bool", True)
    assert charge_tags["otel.status_code"] == ("string", "ERROR")
    assert charge_tags["otel.status_description"] == ("string", "declined")
    [log] = charge["logs"]
    fields = {f["key"]: f["value"] for f in log["fields"]}
    assert fields["event"] == "exception"
    assert fields["exception.type"] == "ValueError"
    assert "card 4242 declined" in fields["exception.stacktrace"]
    for spec in sent:
        span = spans[spec.name]
        assert (span["startTime"], span["duration"]) == (
            spec.start_ns // 1000,
            spec.duration_ns // 1000,
        )
    native = api.get(f"/api/v1/traces/{trace_id}").json()["spans"]
    assert [(s["span_id"], s["start_unix_nano"] // 1000) for s in native] == [
        (s["spanID"], s["startTime"]) for s in trace["spans"]
    ]


SEARCH_PARAMETERS = (
    "service", "operation", "tags", "tag", "minDuration", "maxDuration", "start", "end",
    "lookback", "limit", "traceID",
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(SEARCH_PARAMETERS), st.text(max_size=40) | st.integers().map(str)
    ),
    kind=st.text(max_size=12),
)
def test_arbitrary_parameters_never_cause_a_server_error(
    api: TestClient, params: dict[str, str], kind: str
) -> None:
    for response in (
        api.get("/jaeger/api/traces", params=params),
        api.get("/jaeger/api/operations", params={"service": "x", "spanKind": kind}),
    ):
        assert response.status_code in (200, 400)
        if response.status_code == 400:
            assert {e["code"] for e in envelope_errors(response)} == {400}
