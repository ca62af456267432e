"""Exception groups: the masking rule (the ``otelhouse_exceptions`` column of migration 0005),
and exact groups from events with known messages."""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from datetime import datetime

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from otelhouse.storage.semantics import EXCEPTION_MESSAGE
from otelhouse.storage.tables import EXCEPTIONS_TABLE
from otelhouse.storage.traces import insert_spans
from tests.query.spans import Event, Span, Window, random_id, to_columns


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("user 123e4567-e89b-12d3-a456-426614174000 not found", "user <uuid> not found"),
        ("UUID 123E4567-E89B-12D3-A456-426614174000", "UUID <uuid>"),
        ("bad pointer 0x7ffe12 in frame 3", "bad pointer <hex> in frame <n>"),
        ("span 00f067aa0ba902b7 missing", "span <hex> missing"),
        ("retry 3 of 10 after 250ms", "retry <n> of <n> after <n>ms"),
        ("took 1.5s", "took <n>.<n>s"),
        ("sha256 mismatch", "sha<n> mismatch"),
        ("ID=42;", "ID=<n>;"),
        ("cafe is closed", "cafe is closed"),
        ("no numbers here", "no numbers here"),
        ("", ""),
        ("KeyError 'user_42'", "KeyError <str>"),
        ('no column "total amount" in table 7', "no column <str> in table <n>"),
        ("can't find 'it' in 'a b'", "can't find <str> in <str>"),
        ("it's 'unterminated", "it's 'unterminated"),
        ("trace 12345678901234567890123456789012 lost", "trace <hex> lost"),
        ("span deadbeefdeadbeef and 0123456789abcdef", "span <hex> and <hex>"),
        ("key '123e4567-e89b-12d3-a456-426614174000' and 99", "key <str> and <n>"),
        ("'user_42'", "'user_<n>'"),
        ('"no such table"', '"no such table"'),
        ("'a' or 'b'", "<str> or <str>"),
    ],
)
def test_masking(storage: Client, message: str, expected: str) -> None:
    """What the column holds for a message stored in ``otelhouse_exceptions``."""
    storage.insert(EXCEPTIONS_TABLE, [[time.time_ns(), message]], column_names=["Timestamp", "Message"])
    result = storage.query(f"SELECT {EXCEPTION_MESSAGE} FROM {EXCEPTIONS_TABLE}")
    assert result.result_rows == [(expected,)]


TEMPLATES = (
    ("checkout", "ValueError", "invalid quantity <n> for item <n>"),
    ("checkout", "KeyError", "cart <uuid> expired"),
    ("checkout", "TimeoutError", "connection to <hex> timed out after <n>ms"),
    ("payments", "TimeoutError", "connection to <hex> timed out after <n>ms"),
    ("payments", "PaymentDeclined", "card declined"),
)


def fill(template: str, rng: random.Random) -> str:
    """The template with each placeholder replaced by a fresh random value of its kind."""
    makers = {
        "<n>": lambda: str(rng.randrange(10**6)),
        "<uuid>": lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        "<hex>": lambda: f"0x{rng.getrandbits(48):x}",
    }
    out = template
    for placeholder, make in makers.items():
        while placeholder in out:
            out = out.replace(placeholder, make(), 1)
    return out


def test_exception_groups(api: TestClient, storage: Client) -> None:
    rng = random.Random(5)
    window = Window.last(60)
    now = time.time_ns()
    expected: dict[tuple[str, str, str], list[tuple[int, str, str]]] = defaultdict(list)
    spans = []
    traces = [random_id(rng, 32) for _ in range(12)]
    for i in range(300):
        service, kind, template = rng.choice(TEMPLATES)
        start = rng.randrange(window.start_ns, now - 10**9)
        trace_id = rng.choice(traces)
        events = []
        for j in range(rng.randrange(1, 3)):
            stacktrace = f"Traceback {i}.{j}" if rng.random() < 0.7 else ""
            at = start + rng.randrange(10**8)
            events.append(
                Event(
                    at,
                    "exception",
                    {
                        "exception.type": kind,
                        "exception.message": fill(template, rng),
                        "exception.stacktrace": stacktrace,
                    },
                )
            )
            expected[service, kind, template].append((at, stacktrace, trace_id))
        events.append(Event(start, "log", {"exception.type": "NotAnException"}))
        spans.append(
            Span(service, "op", start, 10**6, trace_id, random_id(rng, 16), events=tuple(events))
        )
    before = window.start_ns - 10**11
    ancient = Event(before, "exception", {"exception.type": "Ancient", "exception.message": "x"})
    old_span_id = random_id(rng, 16)
    spans.append(Span("checkout", "op", before, 1, traces[0], old_span_id, events=(ancient,)))
    spans.append(Span("checkout", "op", now - 10**9, 1, traces[0], random_id(rng, 16)))
    insert_spans(storage, to_columns(spans))

    body = api.get("/api/v1/exceptions", params=window.params).json()
    got = {(g["service"], g["type"], g["message"]): g for g in body["exceptions"]}
    ranked = sorted(expected, key=lambda key: (-len(expected[key]), key))
    assert list(got) == ranked
    for key, occurrences in expected.items():
        group = got[key]
        times = [at for at, _, _ in occurrences]
        assert group["count"] == len(occurrences)
        assert datetime.fromisoformat(group["first_seen"]).timestamp() * 1e6 == pytest.approx(
            min(times) // 1000, abs=1
        )
        assert datetime.fromisoformat(group["last_seen"]).timestamp() * 1e6 == pytest.approx(
            max(times) // 1000, abs=1
        )
        with_trace = [(at, st) for at, st, _ in occurrences if st]
        assert group["sample_stacktrace"] == (max(with_trace)[1] if with_trace else "")
        trace_ids = {trace for _, _, trace in occurrences}
        assert len(group["sample_trace_ids"]) == min(5, len(trace_ids))
        assert set(group["sample_trace_ids"]) <= trace_ids
        assert group["sample_trace_ids"] == sorted(group["sample_trace_ids"])

    payments = api.get(
        "/api/v1/exceptions", params={**window.params, "service": "payments", "limit": 1}
    ).json()["exceptions"]
    top = next(key for key in ranked if key[0] == "payments")
    assert [(g["service"], g["type"], g["message"]) for g in payments] == [top]
