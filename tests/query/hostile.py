"""Hostile input for the trace APIs' injection tests, and the fixture that lets it through
the test client unchanged."""

from __future__ import annotations

import time

import httpx
import pytest
from clickhouse_connect.driver.client import Client

from otelhouse.storage.traces import insert_spans
from tests.query.trace_builder import SpanSpec, to_columns

INJECTION_CORPUS = (
    "'",
    '"',
    "' OR 1=1 --",
    "{x:String}",
    "x; DROP TABLE otel_traces",
    "nul\x00byte",
    "\\' \\\\",
    "m" * 1_000_000,
)


@pytest.fixture
def long_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx refuses URLs over 64 KiB on the client side; the 1 MB corpus entry must reach
    the app, so the client-side guard is raised for the test using this fixture."""
    monkeypatch.setattr(httpx._urlparse, "MAX_URL_LENGTH", 8 * 1024 * 1024)


def insert_corpus(client: Client) -> list[SpanSpec]:
    """One single-span trace per corpus string, used as its service, operation, the value of
    attribute ``k`` and (colons removed: ``attr`` splits at the first one) an attribute key."""
    now = time.time_ns()
    specs = [
        SpanSpec(
            trace_id=f"{i + 1:032x}",
            span_id=f"{i + 1:016x}",
            parent_span_id="",
            name=text,
            service=text,
            kind="Server",
            start_ns=now - (i + 1) * 10**9,
            duration_ns=1_000,
            attributes={text.replace(":", ""): text, "k": text},
        )
        for i, text in enumerate(INJECTION_CORPUS)
    ]
    insert_spans(client, to_columns(specs))
    return specs
