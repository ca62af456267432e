"""``/api/v1/logs`` and ``/logs/stats`` against generated records, expectations computed in
Python (tests/query/log_records.py); pages under concurrent inserts; the trace endpoint's
logs; hostile values in every new parameter."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from otelhouse.storage.logs import insert_logs
from tests.query.hostile import INJECTION_CORPUS
from tests.query.log_records import Log, at_least, contains, generate, to_columns
from tests.query.test_injection import CORPUS, get
from tests.query.trace_builder import by_trace, insert_shop

MINUTE_NS = 60 * 10**9


def key(record: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in record.items() if k != "timestamp"}, sort_keys=True)


def pages(api: TestClient, limit: int, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a search, following ``next_cursor`` to the end."""
    found, cursor = [], params.pop("cursor", None)
    while True:
        extra = {"cursor": cursor} if cursor else {}
        response = api.get("/api/v1/logs", params={**params, "limit": limit, **extra})
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["logs"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def assert_newest_first_exactly(got: list[dict[str, Any]], expected: list[Log]) -> None:
    stamps = [record["timestamp_unix_nano"] for record in got]
    assert stamps == sorted(stamps, reverse=True)
    assert Counter(map(key, got)) == Counter(key(log.json()) for log in expected)


@pytest.fixture
def logs(storage: Client) -> list[Log]:
    """300 records over the last 30 minutes (returned) and 20 from 2 hours ago (not)."""
    rng = random.Random(11)
    now = time.time_ns()
    recent = generate(rng, 300, now - 30 * MINUTE_NS, now)
    old = generate(rng, 20, now - 120 * MINUTE_NS, now - 90 * MINUTE_NS)
    insert_logs(storage, to_columns(recent + old))
    return recent


def expected_for(logs: list[Log], params: dict[str, Any]) -> list[Log]:
    attrs = params.get("attr", [])
    attrs = [attrs] if isinstance(attrs, str) else attrs
    pairs = [pair.split(":", 1) for pair in attrs]
    return [
        log
        for log in logs
        if ("service" not in params or log.service == params["service"])
        and (
            "severity" not in params
            or at_least(params["severity"]) <= log.severity_number <= 24
        )
        and ("q" not in params or contains(log.body, params["q"]))
        and ("trace_id" not in params or log.trace_id == params["trace_id"].lower())
        and all(k in log.attributes and log.attributes[k] == v for k, v in pairs)
    ]


FILTERS: list[dict[str, Any]] = [
    {},
    {"service": "svc-1"},
    {"severity": "warn"},
    {"severity": "TRACE"},
    {"severity": "Fatal"},
    {"severity": "info", "service": "svc-2"},
    {"q": "refus"},
    {"q": "connection REFUSED"},
    {"q": "/cart/42 "},
    {"q": "x=1; [db]"},
    {"q": "Ünïcode"},
    {"q": "ünïcode"},
    {"attr": "user:alice"},
    {"attr": ["user:bob", "region:eu"]},
    {"attr": "region:"},
    {"severity": "error", "q": "disk", "attr": "user:carol"},
]


@pytest.mark.parametrize("params", FILTERS, ids=lambda p: json.dumps(p, ensure_ascii=False))
def test_filters_and_pages_match_python(
    api: TestClient, logs: list[Log], params: dict[str, Any]
) -> None:
    found = pages(api, 13, since="1h", **params)
    assert all(len(page) == 13 for page in found[:-1])
    assert_newest_first_exactly([r for page in found for r in page], expected_for(logs, params))


def test_trace_id_filter_accepts_any_case(api: TestClient, logs: list[Log]) -> None:
    trace_id = next(log.trace_id for log in logs if log.trace_id)
    params = {"trace_id": trace_id.upper()}
    found = pages(api, 50, **params)
    assert_newest_first_exactly([r for p in found for r in p], expected_for(logs, params))


def test_records_carry_rfc3339_and_exact_times(api: TestClient, logs: list[Log]) -> None:
    (record,) = api.get("/api/v1/logs", params={"limit": 1}).json()["logs"]
    newest = max(log.timestamp_ns for log in logs)
    assert record["timestamp_unix_nano"] == newest
    day = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(newest // 10**9))
    assert record["timestamp"].startswith(day) and record["timestamp"].endswith("Z")


def test_q_is_a_case_insensitive_substring(api: TestClient, logs: list[Log]) -> None:
    """Random fragments of stored bodies, ASCII case flipped, cut inside tokens."""
    rng = random.Random(5)
    for _ in range(25):
        body = rng.choice(logs).body
        start = rng.randrange(len(body))
        fragment = body[start : start + rng.randint(1, 12)]
        q = "".join(c.swapcase() if c.isascii() and rng.random() < 0.5 else c for c in fragment)
        found = pages(api, 1000, q=q)
        assert_newest_first_exactly([r for p in found for r in p], expected_for(logs, {"q": q}))


def test_q_examples(api: TestClient, storage: Client) -> None:
    now = time.time_ns()
    long = "Z" * 5000
    bodies = ["Connection REFUSED by peer", "user=bob; retry", "users listed", "a-b-c", "Ä big"]
    bodies += [f"x {long} y", "a naïve b"]
    insert_logs(storage, to_columns([Log(now - i, "s", 9, b) for i, b in enumerate(bodies)]))

    def hits(q: str) -> list[str]:
        return sorted(r["body"] for r in api.get("/api/v1/logs", params={"q": q}).json()["logs"])

    assert hits("refus") == ["Connection REFUSED by peer"]
    assert hits("connection refused BY") == ["Connection REFUSED by peer"]
    assert hits("user") == ["user=bob; retry", "users listed"]
    assert hits("=BOB; ") == ["user=bob; retry"]
    assert hits("-b-") == ["a-b-c"]
    assert hits("ä big") == [] and hits("Ä BIG") == ["Ä big"]
    assert hits(f" {long.lower()} ") == [f"x {long} y"]
    assert hits(" naïve ") == ["a naïve b"] and hits("a NAÏVE b") == []
    assert hits("absent") == []


def test_pages_are_stable_while_newer_records_arrive(
    api: TestClient, storage: Client, logs: list[Log]
) -> None:
    seen: list[dict[str, Any]] = []
    cursor = None
    rng = random.Random(3)
    for round_ in range(100):
        extra = {"cursor": cursor} if cursor else {}
        body = api.get("/api/v1/logs", params={"since": "1h", "limit": 17, **extra}).json()
        seen.extend(body["logs"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        now = time.time_ns()
        newer = generate(rng, 5, now, now + 1000)
        insert_logs(storage, to_columns(newer))
        assert round_ < 99
    assert_newest_first_exactly(seen, logs)


def test_later_pages_keep_the_first_pages_since_range(api: TestClient, storage: Client) -> None:
    """``since`` moves with the clock; a cursor keeps the range its first page had."""
    now = time.time_ns()
    recent = [Log(now - 10**9 - i * 10**8, "svc", 9, f"tick {i}") for i in range(80)]
    insert_logs(storage, to_columns(recent))
    first = api.get("/api/v1/logs", params={"since": "10s", "limit": 40}).json()
    time.sleep(4)
    rest = pages(api, 40, since="10s", cursor=first["next_cursor"])
    assert_newest_first_exactly(first["logs"] + [r for p in rest for r in p], recent)


def test_a_page_boundary_among_equal_timestamps(api: TestClient, storage: Client) -> None:
    now = time.time_ns()
    same = [Log(now - MINUTE_NS, f"svc-{i % 3}", i % 25, f"tick {i}") for i in range(20)]
    insert_logs(storage, to_columns(same))
    found = pages(api, 3)
    assert [len(p) for p in found] == [3] * 6 + [2]
    assert_newest_first_exactly([r for p in found for r in p], same)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"severity": "warning"}, "severity"),
        ({"severity": ""}, "severity"),
        ({"trace_id": "abc"}, "trace_id"),
        ({"trace_id": "g" * 32}, "trace_id"),
        ({"attr": "nocolon"}, "attr"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
    ],
)
def test_malformed_parameters_are_422_naming_them(
    api: TestClient, params: dict[str, Any], name: str
) -> None:
    response = api.get("/api/v1/logs", params=params)
    assert response.status_code == 422
    assert ["query", name] in [d["loc"] for d in response.json()["detail"]]


def test_stats_equal_python_counts(api: TestClient, logs: list[Log]) -> None:
    for service in (None, "svc-3"):
        params = {"since": "1h", "step": "5m", **({"service": service} if service else {})}
        body = api.get("/api/v1/logs/stats", params=params).json()
        chosen = [log for log in logs if service in (None, log.service)]
        levels = ["UNSPECIFIED", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
        assert body["step_s"] == 300
        assert body["count"] == len(chosen)
        by_level = Counter(log.level for log in chosen)
        assert body["by_severity"] == {**dict.fromkeys(levels, 0), **by_level}
        by_service = Counter(log.service for log in chosen)
        assert {r["service"]: r["count"] for r in body["by_service"]} == by_service
        counts = [r["count"] for r in body["by_service"]]
        assert counts == sorted(counts, reverse=True)
        per_bucket = Counter((log.timestamp_ns // 10**9 // 300 * 300, log.level) for log in chosen)
        got = {}
        for bucket in body["buckets"]:
            assert set(bucket["by_severity"]) == set(levels)
            assert bucket["count"] == sum(bucket["by_severity"].values())
            start = int(datetime.fromisoformat(bucket["start"]).timestamp())
            for level, count in bucket["by_severity"].items():
                if count:
                    got[(start, level)] = count
        assert got == dict(per_bucket)
        assert len(body["buckets"]) in (12, 13)


def test_trace_includes_its_logs_oldest_first(api: TestClient, storage: Client) -> None:
    traces = by_trace(insert_shop(storage))
    (trace_id, spans), (other_id, _) = list(traces.items())[:2]
    first = min(s.start_ns for s in spans)
    last = max(s.end_ns for s in spans)
    inside = [
        Log(last, "cart", 17, "failed", trace_id, spans[0].span_id, attributes={"a": "1"}),
        Log(first - 30 * 10**9, "edge", 9, "early, within the margin", trace_id),
        Log(first + 1, "edge", 5, "started", trace_id),
    ]
    outside = [
        Log(last + 2 * MINUTE_NS, "cart", 9, "too late", trace_id),
        Log(first, "cart", 9, "another trace", other_id),
        Log(first, "cart", 9, "no trace"),
    ]
    insert_logs(storage, to_columns(inside + outside))
    body = api.get(f"/api/v1/traces/{trace_id.upper()}").json()
    assert body["span_count"] == len(spans)
    stripped = [{k: v for k, v in r.items() if k != "timestamp"} for r in body["logs"]]
    assert stripped == [log.json() for log in sorted(inside, key=lambda log: log.timestamp_ns)]
    lone = next(tid for tid in traces if tid not in (trace_id, other_id))
    assert api.get(f"/api/v1/traces/{lone}").json()["logs"] == []


@pytest.fixture
def hostile_logs(storage: Client) -> list[Log]:
    """A record per hostile value (as service, body and attribute ``k``) and an ordinary one
    that an injected ``OR 1=1`` would drag in."""
    now = time.time_ns()
    values = list(dict.fromkeys([*CORPUS, *INJECTION_CORPUS]))
    logs = [
        Log(now - (i + 1) * 10**6, value, 13, value, attributes={"k": value})
        for i, value in enumerate(values)
    ]
    logs.append(Log(now, "ordinary", 9, "ordinary", attributes={"k": "ordinary"}))
    insert_logs(storage, to_columns(logs))
    return logs


def test_hostile_values_in_every_parameter(api: TestClient, hostile_logs: list[Log]) -> None:
    """Never a 5xx: free text (``service``, ``q``, the value of ``attr``) matches literally,
    a malformed ``attr`` and every typed parameter is a 422 naming itself."""
    checked = 0
    for path in ("/api/v1/logs", "/api/v1/logs/stats"):
        names = [p["name"] for p in api.app.openapi()["paths"][path]["get"]["parameters"]]
        for name in names:
            for log in hostile_logs[:-1]:
                value = log.service
                status, body = get(api.app, path, {name: value})
                label = (path, name, value[:40])
                checked += 1
                if name == "service":
                    assert status == 200, label
                    if path == "/api/v1/logs":
                        assert [r["body"] for r in body["logs"]] == [value], label
                    else:
                        assert body["count"] == 1, label
                elif name == "q":
                    assert status == 200, label
                    expected = [lg for lg in hostile_logs if contains(lg.body, value)]
                    assert_newest_first_exactly(body["logs"], expected)
                elif name == "attr" and ":" in value:
                    assert status == 200 and body["logs"] == [], label
                else:
                    assert status == 422, label
                    assert ["query", name] in [d["loc"] for d in body["detail"]], label
    for log in hostile_logs:
        status, body = get(api.app, "/api/v1/logs", {"attr": f"k:{log.body}"})
        assert status == 200
        assert [r["body"] for r in body["logs"]] == [log.body]
    assert checked > 150
