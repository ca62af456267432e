"""``/api/v1/traces``: search and trace by id over known traces, expectations computed from the
sent spans in Python; one end-to-end run from the real OTel SDK through the real receiver."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ReceiverThread
from tests.query.hostile import insert_corpus, long_urls  # noqa: F401 - fixture
from tests.query.sdk_traces import send_shop_trace
from otelhouse.query.trace_search import RECENT_SHARE
from otelhouse.storage.traces import insert_spans
from tests.query.trace_builder import SpanSpec, by_trace, insert_shop, random_traces, to_columns



@pytest.fixture
def shop(storage: Client) -> list[SpanSpec]:
    return insert_shop(storage)


def root_of(spans: list[SpanSpec]) -> SpanSpec:
    [root] = [s for s in spans if not s.parent_span_id]
    return root


def summary_of(spans: list[SpanSpec]) -> dict[str, object]:
    root = root_of(spans)
    return {
        "trace_id": root.trace_id,
        "root_service": root.service,
        "root_operation": root.name,
        "start_unix_nano": root.start_ns,
        "duration_ms": root.duration_ns / 1e6,
        "span_count": len(spans),
        "error": any(s.is_error for s in spans),
        "services": sorted({s.service for s in spans}),
    }


def span_json(spec: SpanSpec) -> dict[str, object]:
    return {
        "trace_id": spec.trace_id,
        "span_id": spec.span_id,
        "parent_span_id": spec.parent_span_id,
        "name": spec.name,
        "kind": spec.kind,
        "service": spec.service,
        "start_unix_nano": spec.start_ns,
        "duration_ms": spec.duration_ns / 1e6,
        "status_code": spec.status_code,
        "status_message": spec.status_message,
        "error": spec.is_error,
        "trace_state": spec.trace_state,
        "scope_name": spec.scope_name,
        "scope_version": spec.scope_version,
        "attributes": spec.attributes,
        "resource_attributes": {"service.name": spec.service, **spec.resource},
        "events": [
            {"time_unix_nano": ns, "name": name, "attributes": attrs}
            for ns, name, attrs in spec.events
        ],
        "links": [
            {"trace_id": tid, "span_id": sid, "trace_state": state, "attributes": attrs}
            for tid, sid, state, attrs in spec.links
        ],
    }


def without_datetimes(value: object) -> object:
    """The RFC 3339 copies of the nanosecond fields are checked separately."""
    if isinstance(value, dict):
        return {k: without_datetimes(v) for k, v in value.items() if k not in ("start", "time")}
    if isinstance(value, list):
        return [without_datetimes(v) for v in value]
    return value


def test_trace_by_id_returns_exactly_the_sent_spans(api: TestClient, shop: list[SpanSpec]) -> None:
    for trace_id, spans in by_trace(shop).items():
        response = api.get(f"/api/v1/traces/{trace_id.upper()}")
        assert response.status_code == 200
        body = response.json()
        assert without_datetimes(body["spans"]) == [span_json(s) for s in spans]
        first = min(s.start_ns for s in spans)
        assert body["trace_id"] == trace_id
        assert body["span_count"] == len(spans)
        assert body["services"] == sorted({s.service for s in spans})
        assert body["start_unix_nano"] == first
        assert body["duration_ms"] == (max(s.end_ns for s in spans) - first) / 1e6
        day = time.strftime("%Y-%m-%dT", time.gmtime(first / 1e9))
        assert body["start"].startswith(day) and body["spans"][0]["start"].startswith(day)


@pytest.mark.parametrize(
    ("trace_id", "status"),
    [
        ("0" * 31 + "1", 404),
        ("ab" * 16, 404),
        ("abc", 400),
        ("g" * 32, 400),
        ("a" * 33, 400),
        ("' OR 1=1 --", 400),
        ("{x:String}", 400),
    ],
)
def test_trace_by_id_rejects_unknown_and_malformed(
    api: TestClient, shop: list[SpanSpec], trace_id: str, status: int
) -> None:
    response = api.get(f"/api/v1/traces/{trace_id}")
    assert response.status_code == status
    assert "detail" in response.json()


Predicate = Callable[[list[SpanSpec]], bool]


def any_span(test: Callable[[SpanSpec], bool]) -> Predicate:
    return lambda spans: any(test(s) for s in spans)


def root_ms(spans: list[SpanSpec]) -> float:
    return root_of(spans).duration_ns / 1e6


SEARCHES: list[tuple[str, dict[str, object], Predicate]] = [
    ("everything", {}, lambda spans: True),
    ("service", {"service": "payment"}, any_span(lambda s: s.service == "payment")),
    ("operation", {"operation": "charge"}, any_span(lambda s: s.name == "charge")),
    (
        "service and operation on one span",
        {"service": "cart", "operation": "reserve"},
        any_span(lambda s: s.service == "cart" and s.name == "reserve"),
    ),
    (
        "attribute",
        {"attr": "customer.tier:gold"},
        any_span(lambda s: s.attributes["customer.tier"] == "gold"),
    ),
    (
        "two attributes on one span",
        {"attr": ["customer.tier:silver", "http.response.status_code:500"]},
        any_span(
            lambda s: s.attributes["customer.tier"] == "silver"
            and s.attributes.get("http.response.status_code") == "500"
        ),
    ),
    ("resource attributes are not span attributes", {"attr": "host.name:host-1"}, lambda _: False),
    (
        "attribute with a materialized column",
        {"attr": "http.route:/orders/{id}"},
        any_span(lambda s: s.attributes.get("http.route") == "/orders/{id}"),
    ),
    ("empty value needs the key", {"attr": "http.route:"}, lambda _: False),
    ("min duration", {"min_duration_ms": 400}, lambda spans: root_ms(spans) >= 400),
    ("max duration", {"max_duration_ms": 250.5}, lambda spans: root_ms(spans) <= 250.5),
    ("errors", {"status": "error"}, any_span(lambda s: s.is_error)),
    ("ok", {"status": "ok"}, lambda spans: not any(s.is_error for s in spans)),
]

ORDERS: dict[str, Callable[[list[SpanSpec]], tuple]] = {
    "newest": lambda spans: (-root_of(spans).start_ns, spans[0].trace_id),
    "oldest": lambda spans: (root_of(spans).start_ns, spans[0].trace_id),
    "slowest": lambda spans: (-root_ms(spans), spans[0].trace_id),
    "fastest": lambda spans: (root_ms(spans), spans[0].trace_id),
}


def test_search_filters_match_independent_expectations(
    api: TestClient, shop: list[SpanSpec]
) -> None:
    traces = by_trace(shop)
    for name, params, predicate in SEARCHES:
        for order, key in ORDERS.items():
            expected = sorted((t for t in traces.values() if predicate(t)), key=key)
            response = api.get("/api/v1/traces", params={**params, "order": order, "limit": 1000})
            assert response.status_code == 200, (name, response.text)
            got = response.json()["traces"]
            assert [t["trace_id"] for t in got] == [t[0].trace_id for t in expected], (name, order)
        assert len(expected) < len(traces) or name == "everything", name
        assert expected or name.startswith(("resource", "empty")), name


def test_search_summaries_and_limit(api: TestClient, shop: list[SpanSpec]) -> None:
    traces = by_trace(shop)
    newest = sorted(traces.values(), key=ORDERS["newest"])
    body = api.get("/api/v1/traces", params={"limit": 7}).json()
    assert body["limit"] == 7
    assert len(body["traces"]) == 7
    for got, spans in zip(body["traces"], newest, strict=False):
        expected = summary_of(spans)
        assert got["duration_ms"] == pytest.approx(expected.pop("duration_ms"), abs=1e-9)
        assert {k: got[k] for k in expected} == expected


def test_search_respects_the_time_range(api: TestClient, shop: list[SpanSpec]) -> None:
    traces = by_trace(shop)
    everything = api.get("/api/v1/traces", params={"limit": 1000, "since": "24h"}).json()
    assert len(everything["traces"]) == len(traces) + 1
    cut = sorted(root_of(t).start_ns for t in traces.values())[len(traces) // 2]
    start_ms = cut // 1_000_000 + 1
    recent = api.get("/api/v1/traces", params={"limit": 1000, "start": str(start_ms)}).json()
    expected = {tid for tid, t in traces.items() if root_of(t).start_ns >= start_ms * 10**6}
    assert {t["trace_id"] for t in recent["traces"]} == expected
    assert 0 < len(expected) < len(traces)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"attr": "no-colon"}, "attr"),
        ({"attr": ":value"}, "attr"),
        ({"attr": [f"k{i}:v" for i in range(21)]}, "attr"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"order": "random"}, "order"),
        ({"status": "broken"}, "status"),
        ({"min_duration_ms": -1}, "min_duration_ms"),
        ({"min_duration_ms": "fast"}, "min_duration_ms"),
        ({"min_duration_ms": 10, "max_duration_ms": 5}, "max_duration_ms"),
        ({"since": "forever"}, "since"),
    ],
)
def test_search_rejects_malformed_parameters(
    api: TestClient, params: dict[str, object], parameter: str
) -> None:
    response = api.get("/api/v1/traces", params=params)
    assert response.status_code == 422
    assert parameter in {error["loc"][-1] for error in response.json()["detail"]}


def test_injection_corpus_is_matched_literally(
    api: TestClient, storage: Client, long_urls: None
) -> None:
    """Each corpus string is stored as a service, an operation, an attribute key and value;
    searching for it finds exactly its own trace, and nothing breaks the server."""
    specs = insert_corpus(storage)
    for spec in specs:
        text = spec.name
        key = text.replace(":", "")  # attr splits at the first colon: keys cannot hold one
        for params in (
            {"service": text},
            {"operation": text},
            {"attr": f"k:{text}"},
            {"attr": f"{key}:{text}"},
            {"service": text, "operation": text, "attr": [f"k:{text}", f"{key}:{text}"]},
        ):
            response = api.get("/api/v1/traces", params=params)
            assert response.status_code == 200, (text[:20], response.text[:200])
            assert [t["trace_id"] for t in response.json()["traces"]] == [spec.trace_id]
        for parameter in ("order", "status", "since", "start", "limit", "min_duration_ms"):
            response = api.get("/api/v1/traces", params={parameter: text})
            assert response.status_code == 422, (parameter, text[:20])
        response = api.get(f"/api/v1/traces/{quote(text, safe='')}")
        assert response.status_code in (400, 404), text[:20]
    total = api.get("/api/v1/traces", params={"limit": 1000}).json()["traces"]
    assert len(total) == len(specs)


def test_sdk_trace_end_to_end(api: TestClient, receiver: ReceiverThread) -> None:
    sent = send_shop_trace(receiver.endpoint)
    trace_id = sent[0].trace_id
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = api.get(f"/api/v1/traces/{trace_id}")
        if response.status_code == 200 and response.json()["span_count"] == len(sent):
            break
        time.sleep(0.05)
    body = response.json()
    assert body["span_count"] == len(sent)
    assert without_datetimes(body["spans"]) == [span_json(s) for s in sent]
    found = api.get(
        "/api/v1/traces", params={"service": "checkout", "attr": "payment.method:card"}
    ).json()
    assert [t["trace_id"] for t in found["traces"]] == [trace_id]
    assert found["traces"][0]["root_service"] == "storefront"
    assert found["traces"][0]["error"] is True


SEARCH_PARAMETERS = (
    "service", "operation", "attr", "min_duration_ms", "max_duration_ms", "status", "limit",
    "order", "start", "end", "since",
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(SEARCH_PARAMETERS), st.text(max_size=40) | st.integers().map(str)
    ),
    trace_id=st.text(min_size=1, max_size=40).filter(lambda t: t not in (".", "..")),
)
def test_arbitrary_parameters_never_cause_a_server_error(
    api: TestClient, params: dict[str, str], trace_id: str
) -> None:
    assert api.get("/api/v1/traces", params=params).status_code in (200, 422)
    response = api.get(f"/api/v1/traces/{quote(trace_id, safe='')}")
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("path", ["/api/v1/traces/%2F", "/api/v1/traces/", "/api/v1/traces//"])
def test_a_trace_path_without_an_id_is_not_found_not_a_search(api: TestClient, path: str) -> None:
    response = api.get(path, follow_redirects=False)
    assert response.status_code == 404


def test_newest_first_searches_find_the_same_traces_through_the_recent_window(
    api: TestClient, storage: Client
) -> None:
    """Small limits, where the last 1/16 of the range often holds enough matches (and is all
    the search reads), and larger ones, where it does not and the whole range is searched:
    either way the answer is the newest matching traces of the whole range."""
    now = time.time_ns()
    traces = by_trace(random_traces(random.Random(11), now, 400))
    insert_spans(storage, to_columns([s for t in traces.values() for s in t]))
    end_ns = now - 30 * 10**9
    start_ns = end_ns - 32 * 60 * 10**9
    window_from = end_ns - (end_ns - start_ns) // RECENT_SHARE
    in_range = {
        tid: t for tid, t in traces.items() if start_ns <= root_of(t).start_ns < end_ns
    }
    paths = set()
    for name, params, predicate in SEARCHES:
        matching = sorted((t for t in in_range.values() if predicate(t)), key=ORDERS["newest"])
        recent = sum(root_of(t).start_ns >= window_from for t in matching)
        for limit in (1, 4, 30):
            response = api.get(
                "/api/v1/traces",
                params={**params, "limit": limit, "start": str(start_ns // 10**6 + 1),
                        "end": str(end_ns // 10**6)},
            )
            assert response.status_code == 200, (name, response.text)
            got = [t["trace_id"] for t in response.json()["traces"]]
            assert got == [t[0].trace_id for t in matching[:limit]], (name, limit)
            paths.add("recent window" if recent >= limit else "whole range")
    assert paths == {"recent window", "whole range"}


def test_a_span_starting_before_its_root_by_clock_skew_still_counts_in_the_recent_window(
    api: TestClient, storage: Client
) -> None:
    """The default hour's recent window starts 225 s ago: the newest matching trace's root
    starts inside it, its failing span (a host whose clock is 40 s behind) before it. An
    older match lies wholly inside the window, so the window alone answers the search."""
    now = time.time_ns()
    root = SpanSpec("ab" * 16, "01" * 8, "", "GET /skewed", "frontend", "Server",
                    now - 210 * 10**9, 10**8)
    early_failure = SpanSpec(root.trace_id, "02" * 8, root.span_id, "charge", "payment",
                             "Client", root.start_ns - 40 * 10**9, 10**6, status_code="Error")
    older = SpanSpec("cd" * 16, "03" * 8, "", "GET /plain", "frontend", "Server",
                     now - 220 * 10**9, 10**8)
    older_failure = SpanSpec(older.trace_id, "04" * 8, older.span_id, "charge", "payment",
                             "Client", older.start_ns + 10**6, 10**6, status_code="Error")
    insert_spans(storage, to_columns([root, early_failure, older, older_failure]))
    body = api.get(
        "/api/v1/traces", params={"service": "payment", "status": "error", "limit": 1}
    ).json()
    assert [t["trace_id"] for t in body["traces"]] == [root.trace_id]
