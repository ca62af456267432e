"""Hostile values in every parameter of the aggregate endpoints: never a 5xx; free-text
filters match literally (they are bound parameters), typed ones are a 422 naming themselves.

Requests go straight into the ASGI app (:func:`get`): HTTP clients refuse URLs over 64 KiB,
and the 1 MB values must still reach the parameter parsing and the SQL binding.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otelhouse.storage.traces import insert_spans
from tests.query.spans import Event, Span, Window, to_columns

PATHS = (
    "/api/v1/services",
    "/api/v1/operations",
    "/api/v1/latency",
    "/api/v1/errors",
    "/api/v1/exceptions",
    "/api/v1/summary",
    "/api/v1/endpoints/top",
    "/api/v1/requests/recent",
)
FREE_TEXT = {"service", "operation"}
CORPUS = (
    "'",
    '"',
    "\\",
    "' OR 1=1 --",
    "') OR ('1'='1",
    "{x:String}",
    "{service:String}",
    ";DROP TABLE otel_traces",
    "a\x00b",
    "%00%27",
    "é☃\u202e",
    "x" * 1_000_000,
)


def get(app: FastAPI, path: str, params: dict[str, str | int]) -> tuple[int, Any]:
    """One GET through the app's ASGI interface; the app must be started (lifespan run)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": urlencode(params).encode(),
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def declared_parameters(api: TestClient, path: str) -> list[str]:
    return [p["name"] for p in api.app.openapi()["paths"][path]["get"]["parameters"]]


def test_every_parameter_of_every_endpoint_takes_the_corpus(api: TestClient) -> None:
    checked = 0
    for path in PATHS:
        parameters = declared_parameters(api, path)
        assert {"start", "end", "since"} <= set(parameters), path
        for name in parameters:
            for value in CORPUS:
                status, body = get(api.app, path, {name: value})
                label = (path, name, value[:40])
                if name in FREE_TEXT:
                    assert status == 200, label
                else:
                    assert status == 422, label
                    locations = [d["loc"] for d in body["detail"]]
                    assert ["query", name] in locations, label
                checked += 1
    assert checked > 300


@pytest.fixture
def hostile_spans(storage: Client) -> dict[str, int]:
    """Spans whose service, span name, route and exception type are corpus values, next to
    one ordinary span that an injected ``OR 1=1`` would drag in; returns spans per value."""
    now = time.time_ns()
    spans = []
    per_value = {}
    for i, value in enumerate(CORPUS):
        per_value[value] = 1 + i % 3
        for j in range(per_value[value]):
            exception = Event(now, "exception", {"exception.type": value, "exception.message": "m"})
            spans.append(
                Span(
                    service=value,
                    name=value,
                    start_ns=now - (i * 10 + j) * 10**6,
                    duration_ns=10**6,
                    trace_id=f"{i:016x}{j:016x}",
                    span_id=f"{i:08x}{j:08x}",
                    attributes={"http.route": value, "http.request.method": "GET"},
                    events=(exception,),
                )
            )
    spans.append(Span("ordinary", "ordinary", now, 10**6, "f" * 32, "f" * 16))
    insert_spans(storage, to_columns(spans))
    return per_value


def test_filters_match_literally(api: TestClient, hostile_spans: dict[str, int]) -> None:
    window = Window.last(5).params

    def answer(path: str, **filters: str) -> Any:
        status, body = get(api.app, path, {**window, **filters})
        assert status == 200, (path, body)
        return body

    services = answer("/api/v1/services")["services"]
    assert {row["service"] for row in services} == {*CORPUS, "ordinary"}
    for value, count in hostile_spans.items():
        operations = answer("/api/v1/operations", service=value)["operations"]
        assert [(r["service"], r["operation"], r["spans"]) for r in operations] == [
            (value, value, count)
        ]
        buckets = answer("/api/v1/latency", service=value, operation=value)["buckets"]
        assert sum(b["requests"] for b in buckets) == count
        assert answer("/api/v1/summary", service=value)["requests"] == count
        (endpoint,) = answer("/api/v1/endpoints/top", service=value)["endpoints"]
        assert (endpoint["route"], endpoint["requests"]) == (value, count)
        (exception,) = answer("/api/v1/exceptions", service=value)["exceptions"]
        assert (exception["type"], exception["count"]) == (value, count)
        recent = answer("/api/v1/requests/recent", service=value)["requests"]
        assert {r["service"] for r in recent} == {value} and len(recent) == count
