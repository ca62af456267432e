"""Every panel and variable query, expanded as Grafana and the ClickHouse plugin expand it,
run on the embedded engine loaded with known spans and log records, against values computed
in Python."""

from __future__ import annotations

import datetime
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client

from otelhouse.storage.logs import insert_logs
from otelhouse.storage.tables import EXCEPTIONS_TABLE
from otelhouse.storage.traces import insert_spans
from tests.query.cross_service import pause_rollup
from tests.grafana.dashboards import load_dashboards, panel_sql, variables
from tests.grafana.database import migrated_database
from tests.grafana.dataset import (
    IN_RANGE_S,
    LEVEL_RANGES,
    NS,
    TRICKY_TEXT,
    Event,
    LogRecord,
    Span,
    make_logs,
    make_spans,
    normalize,
    to_columns,
    to_log_columns,
)
from tests.grafana.expand import ALL, TimeRange, Variable, expand

INTERVAL_S = 60
PERCENTILES = (50, 90, 95, 99)
BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
BOARDS = load_dashboards()

Row = dict[str, Any]


@dataclass
class Loaded:
    client: Client
    spans: list[Span]
    time_range: TimeRange
    logs: list[LogRecord]

    def covers(self, ts_ns: int) -> bool:
        """Whether ``$__timeFilter`` keeps this time (the macro works in whole seconds)."""
        return self.time_range.from_ms // 1000 * NS <= ts_ns <= self.time_range.to_ms // 1000 * NS

    def in_range(self) -> list[Span]:
        return [s for s in self.spans if self.covers(s.ts_ns)]

    def logs_in_range(self) -> list[LogRecord]:
        return [r for r in self.logs if self.covers(r.ts_ns)]

    def run(self, sql: str, values: dict[str, Any], board: dict[str, Any]) -> list[Row]:
        query = expand(sql, self.variables(values, board), self.time_range)
        result = self.client.query(query)
        return [dict(zip(result.column_names, row)) for row in result.result_rows]

    def variables(self, values: dict[str, Any], board: dict[str, Any]) -> dict[str, Variable]:
        defined = variables(board)
        assert set(values) == set(defined), f"{board['uid']}: set every variable in the case"
        options = {"service": tuple(sorted({s.service for s in self.in_range()}))}
        return {name: Variable(value, options.get(name, ())) for name, value in values.items()}


@pytest.fixture(scope="module")
def loaded(data_dir: Path) -> Iterator[Loaded]:
    """One migrated database with the dataset, shared by this module's read-only tests."""
    with migrated_database(data_dir) as client:
        now_s = int(time.time())
        spans = make_spans(now_s)
        insert_spans(client, to_columns(spans))
        pause_rollup(client)
        logs = make_logs(now_s, spans)
        insert_logs(client, to_log_columns(logs))
        time_range = TimeRange((now_s - IN_RANGE_S) * 1000 + 250, now_s * 1000 + 999, INTERVAL_S * 1000)
        yield Loaded(client, spans, time_range, logs)


# --------------------------------------------------------------------- comparisons


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return round(aware.timestamp(), 6)
    return value


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, datetime.datetime):
        return abs(_plain(actual) - expected) < 2e-6  # to the microsecond the driver returns
    actual = _plain(actual)
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-6)
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    return actual == expected


def assert_rows(actual: list[Row], expected: list[Row], *, ordered: bool, ignore: tuple[str, ...] = ("q",)) -> None:
    actual = [{k: v for k, v in row.items() if k not in ignore} for row in actual]
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}"
    assert not expected or set(actual[0]) == set(expected[0]), f"columns {set(actual[0])}"
    if not ordered:
        identity = [k for k, v in (expected or [{}])[0].items() if isinstance(v, str) or k == "time"]

        def key(row: Row) -> tuple:
            return tuple(str(round(_plain(row[k]), 3) if k == "time" else row[k]) for k in identity)

        actual, expected = sorted(actual, key=key), sorted(expected, key=key)
    for got, want in zip(actual, expected):
        mismatched = {k: (got[k], want[k]) for k in want if not _same(got[k], want[k])}
        assert not mismatched, f"row {want}: got/expected {mismatched}"


# ------------------------------------------------------------ expected, in Python


def bucket(item: Span | Event | LogRecord) -> float:
    seconds = item.ts_ns // NS
    return float(seconds - seconds % INTERVAL_S)


def ms(ns: int | float) -> float:
    return ns / 1e6


def percentiles(spans: list[Span]) -> Row:
    values = np.percentile([s.duration for s in spans], PERCENTILES)
    return {f"p{p}": float(v) / 1e6 for p, v in zip(PERCENTILES, values)}


def grouped(spans: list[Span], key: Callable[[Span], tuple]) -> dict[tuple, list[Span]]:
    groups: dict[tuple, list[Span]] = defaultdict(list)
    for span in spans:
        groups[key(span)].append(span)
    return groups


def error_rate(spans: list[Span]) -> float:
    return sum(s.is_error for s in spans) / len(spans)


def pick(values: Any) -> Callable[[str], bool]:
    """Whether a value passes a variable's selection (All passes everything)."""
    if values == ALL or values == "":
        return lambda _: True
    chosen = {values} if isinstance(values, str) else set(values)
    return lambda v: v in chosen


def requests(loaded: Loaded, v: dict[str, Any]) -> list[Span]:
    service, operation = pick(v["service"]), pick(v.get("operation", ALL))
    return [s for s in loaded.in_range() if s.is_request and service(s.service) and operation(s.name)]


def overview_expected(loaded: Loaded, v: dict[str, Any], title: str) -> list[Row]:
    reqs = requests(loaded, v)
    by_time = grouped(reqs, lambda s: (bucket(s), s.service))
    range_s = loaded.time_range.to_ms // 1000 - loaded.time_range.from_ms // 1000
    if title == "Request rate":
        return [{"time": t, "ServiceName": svc, "requests_per_s": len(g) / INTERVAL_S} for (t, svc), g in by_time.items()]
    if title == "Error rate":
        return [{"time": t, "ServiceName": svc, "error_rate": error_rate(g)} for (t, svc), g in by_time.items()]
    if title == "Latency percentiles":
        return [{"time": t, "ServiceName": svc, **percentiles(g)} for (t, svc), g in by_time.items()]
    stats = lambda g: {"requests": len(g), "error_rate": error_rate(g), **percentiles(g)}  # noqa: E731
    if title == "Services":
        return [{"service": svc, "requests_per_s": len(g) / active_s(g), **stats(g)}
                for (svc,), g in grouped(reqs, lambda s: (s.service,)).items()]
    if title.startswith("Service map"):
        return service_map_expected(loaded, v, title)
    assert title == "Top endpoints"
    return [{"service": svc, "operation": op, **stats(g)}
            for (svc, op), g in grouped(reqs, lambda s: (s.service, s.name)).items()]


def active_s(spans: list[Span]) -> float:
    """First to last start, at least one second: the query API's rate_per_s rule."""
    starts = [s.ts_ns for s in spans]
    return max((max(starts) - min(starts)) / NS, 1.0)


def calls(loaded: Loaded) -> dict[tuple[str, str], list[Span]]:
    """(caller, callee) → the spans standing for the calls in range: the callee's entry span
    under another service's span, or a client span to a peer no span answers. Callers are
    looked up from five minutes before the range."""
    by_id = {s.span: s for s in loaded.spans}
    answered = {s.parent for s in loaded.spans if s.is_request and s.parent}
    edges: dict[tuple[str, str], list[Span]] = defaultdict(list)
    for span in loaded.in_range():
        parent = by_id.get(span.parent)
        if span.is_request and parent is not None and parent.service != span.service:
            edges[parent.service, span.service].append(span)
        peer = span.attrs.get("peer.service") or span.attrs.get("server.address")
        if span.kind in ("Client", "Producer") and peer and span.span not in answered:
            edges[span.service, peer].append(span)
    return edges


def service_map_expected(loaded: Loaded, v: dict[str, Any], title: str) -> list[Row]:
    chosen = pick(v["service"])
    edges = {k: g for k, g in calls(loaded).items() if chosen(k[0]) or chosen(k[1])}
    if title == "Service map/edges":
        return [{"id": f"{a} -> {b}", "source": a, "target": b, "mainstat": len(g),
                 "secondarystat": percentile_95(g), "detail__errors": sum(s.is_error for s in g),
                 "detail__error_rate": error_rate(g)} for (a, b), g in edges.items()]
    assert title == "Service map/nodes"
    served = grouped([s for s in loaded.in_range() if s.is_request], lambda s: (s.service,))
    nodes = {name for edge in edges for name in edge}
    return [{"id": n, "title": n, "mainstat": len(served.get((n,), [])),
             "secondarystat": error_rate(served[n,]) if (n,) in served else 0.0} for n in nodes]


def percentile_95(spans: list[Span]) -> tuple[float, float]:
    """The bounds quantilesDD's p95 (ms) lies within: 1% around numpy's lower and higher
    order statistics next to rank 0.95·(n-1) (query/stats.py)."""
    durations = [s.duration / 1e6 for s in spans]
    low = float(np.quantile(durations, 0.95, method="lower"))
    high = float(np.quantile(durations, 0.95, method="higher"))
    return low * 0.99, high * 1.01


def _duration_label(span: Span) -> tuple[int, str]:
    for slot, bound in enumerate(BUCKETS_MS, start=1):
        if span.duration <= bound * 1_000_000:
            return slot, f"<= {bound} ms"
    return len(BUCKETS_MS) + 1, f"> {BUCKETS_MS[-1]} ms"


def endpoint_expected(loaded: Loaded, v: dict[str, Any], title: str) -> list[Row]:
    reqs = requests(loaded, v)
    if title == "Latency percentiles":
        return sorted(({"time": t, **percentiles(g)} for (t,), g in grouped(reqs, lambda s: (bucket(s),)).items()),
                      key=lambda r: r["time"])
    if title == "Latency distribution":
        counts = Counter(_duration_label(s) for s in reqs)
        return [{"duration": label, "requests": n} for (_, label), n in sorted(counts.items())]
    if title == "Status codes":
        label = lambda s: str(s.http_status) if s.http_status else f"no HTTP status, {s.status}"  # noqa: E731
        return [{"status": k, "requests": n} for k, n in Counter(map(label, reqs)).items()]
    assert title == "Slowest requests"
    slowest = sorted(reqs, key=lambda s: s.duration, reverse=True)[:20]
    return [{"time": s.ts_ns / NS, "trace_id": s.trace, "operation": s.name, "duration_ms": ms(s.duration),
             "http_status": s.http_status, "span_status": s.status} for s in slowest]


def exception_rows(loaded: Loaded, v: dict[str, Any]) -> list[tuple[Span, Event]]:
    """The exception events of the selected services raised within the range: an exception
    is placed by its own time, not by its span's start."""
    service = pick(v["service"])
    return [(s, e) for s in loaded.spans if service(s.service) for e in s.exceptions if loaded.covers(e.ts_ns)]


def exceptions_expected(loaded: Loaded, v: dict[str, Any], title: str) -> list[Row]:
    rows = exception_rows(loaded, v)
    groups = grouped(rows, lambda r: (r[1].attrs["exception.type"], normalize(r[1].attrs["exception.message"])))
    if title == "Exception groups":
        return [{
            "type": t, "message": m, "occurrences": len(g), "traces": len({s.trace for s, _ in g}),
            "first_seen": min(e.ts_ns for _, e in g) / NS, "last_seen": max(e.ts_ns for _, e in g) / NS,
            "services": ", ".join(sorted({s.service for s, _ in g})),
            "sample_trace": max(g, key=lambda r: r[1].ts_ns)[0].trace,
        } for (t, m), g in groups.items()]
    if title == "Exceptions over time":
        by_time = grouped(rows, lambda r: (bucket(r[1]), r[1].attrs["exception.type"]))
        return [{"time": t, "type": k, "exceptions": len(g)} for (t, k), g in by_time.items()]
    selected = groups.get(v["selected"], []) if v["group"] else []
    latest = sorted(selected, key=lambda r: r[1].ts_ns, reverse=True)
    if title == "Stack trace of the selected group":
        return [{"type": e.attrs["exception.type"], "message": e.attrs["exception.message"],
                 "stacktrace": e.attrs["exception.stacktrace"], "seen": e.ts_ns / NS, "trace_id": s.trace}
                for s, e in latest[:1]]
    assert title == "Sample traces of the selected group"
    return [{"time": e.ts_ns / NS, "service": s.service, "operation": s.name, "trace_id": s.trace,
             "message": e.attrs["exception.message"]} for s, e in latest[:50]]


def traces_expected(loaded: Loaded, v: dict[str, Any], title: str) -> list[Row]:
    if title == "Trace":
        spans = sorted((s for s in loaded.spans if s.trace == v["trace_id"]), key=lambda s: s.ts_ns)
        tags = lambda attrs: [{"key": k, "value": attrs[k]} for k in attrs]  # noqa: E731
        return [{
            "traceID": s.trace, "spanID": s.span, "parentSpanID": s.parent, "serviceName": s.service,
            "operationName": s.name, "startTime": s.ts_ns / 1e6, "duration": ms(s.duration), "kind": s.kind.lower(),
            "statusCode": {"Error": 2, "Ok": 1}.get(s.status, 0), "statusMessage": s.status_message,
            "tags": tags(s.attrs), "serviceTags": tags(s.resource),
        } for s in spans]
    low = float(v["min_ms"] or 0) * 1e6
    high = float(v["max_ms"]) * 1e6 if v["max_ms"] else math.inf
    status = {"any": lambda s: True, "error": lambda s: s.is_error, "ok": lambda s: not s.is_error}[v["status"]]
    found = [s for s in requests(loaded, v) if low <= s.duration <= high and status(s)]
    latest = sorted(found, key=lambda s: s.ts_ns, reverse=True)[:200]
    return [{"time": s.ts_ns / NS, "trace_id": s.trace, "service": s.service, "operation": s.name,
             "duration_ms": ms(s.duration), "http_status": s.http_status, "status": "error" if s.is_error else "ok"}
            for s in latest]


def selected_logs(loaded: Loaded, v: dict[str, Any], *, severity: bool = True) -> list[LogRecord]:
    """The records the Logs dashboard's variables select: ``any`` severity admits records
    without a level, a level admits that level and above and never records without one."""
    service = pick(v["service"])
    levels = list(LEVEL_RANGES)
    floor = levels.index(v["severity"]) if v["severity"] in levels else None
    trace = v["trace_id"].lower()

    def admitted(r: LogRecord) -> bool:
        if not severity or floor is None:
            return True
        return r.level in levels and levels.index(r.level) >= floor

    return [r for r in loaded.logs_in_range()
            if service(r.service) and r.contains(v["search"]) and trace in ("", r.trace) and admitted(r)]


def logs_expected(loaded: Loaded, v: dict[str, Any], title: str) -> list[Row]:
    records = selected_logs(loaded, v)
    if title == "Log volume by severity":
        counts = Counter((bucket(r), r.level) for r in records)
        return [{"time": t, "severity": level, "records": n} for (t, level), n in counts.items()]
    if title == "Error log rate":
        errors = Counter((bucket(r), r.service) for r in selected_logs(loaded, v, severity=False) if r.is_error)
        return [{"time": t, "ServiceName": svc, "errors_per_s": n / INTERVAL_S} for (t, svc), n in errors.items()]
    if title == "Log records":
        latest = sorted(records, key=lambda r: r.ts_ns, reverse=True)[:1000]
        return [{"timestamp": r.ts_ns / NS, "body": r.body, "level": r.level, "service": r.service,
                 "severity_text": r.severity_text, "trace_id": r.trace, "span_id": r.span} for r in latest]
    assert title == "Top services"
    by_service = grouped(records, lambda r: (r.service,))
    rows = [{"service": svc, "records": len(g), "errors": sum(r.is_error for r in g)} for (svc,), g in by_service.items()]
    return sorted(rows, key=lambda r: (-r["records"], r["service"]))[:20]


# -------------------------------------------------------------------------- cases


def _cross_service_trace() -> Callable[[Loaded], str]:
    def find(loaded: Loaded) -> str:
        services = grouped(loaded.in_range(), lambda s: (s.trace,))
        return next(t for (t,), g in services.items() if len({s.service for s in g}) > 1)
    return find


def _trace_with_error_logs(loaded: Loaded) -> str:
    """A trace with an ERROR record in range, upper-cased as a user may paste it."""
    return next(r.trace for r in loaded.logs_in_range() if r.trace and r.is_error).upper()


LOGS_ORDERED = ("Log records", "Top services")


@dataclass(frozen=True)
class Case:
    board: str
    values: dict[str, Any]
    expected: Callable[[Loaded, dict[str, Any], str], list[Row]]
    ordered: tuple[str, ...] = ()


CASES = {
    "overview-all": Case("otelhouse-overview", {"service": ALL}, overview_expected),
    "overview-two": Case("otelhouse-overview", {"service": ["checkout", "payments"]}, overview_expected),
    "endpoint-all-operations": Case(
        "otelhouse-endpoint", {"service": "frontend", "operation": ALL}, endpoint_expected,
        ordered=("Latency percentiles", "Latency distribution", "Slowest requests")),
    "endpoint-one-operation": Case(
        "otelhouse-endpoint", {"service": "checkout", "operation": ["POST /orders"]}, endpoint_expected,
        ordered=("Latency percentiles", "Latency distribution", "Slowest requests")),
    "exceptions-group": Case(
        "otelhouse-exceptions", {"service": ALL, "group": "ValueError"}, exceptions_expected,
        ordered=("Stack trace of the selected group", "Sample traces of the selected group")),
    "exceptions-no-group": Case("otelhouse-exceptions", {"service": ["payments"], "group": ""}, exceptions_expected),
    "traces-all": Case(
        "otelhouse-traces",
        {"service": ALL, "operation": ALL, "min_ms": "", "max_ms": "", "status": "any", "trace_id": _cross_service_trace()},
        traces_expected, ordered=("Requests", "Trace")),
    "traces-filtered-errors": Case(
        "otelhouse-traces",
        {"service": ["checkout", "frontend"], "operation": ["POST /orders", "GET /api/cart"], "min_ms": "20",
         "max_ms": "80", "status": "error", "trace_id": ""},
        traces_expected, ordered=("Requests",)),
    "traces-quoted-ok": Case(
        "otelhouse-traces",
        {"service": ["payments"], "operation": ALL, "min_ms": "", "max_ms": "1e4", "status": "ok",
         "trace_id": "x' OR '1'='1"},
        traces_expected, ordered=("Requests",)),
    "logs-all": Case(
        "otelhouse-logs", {"service": ALL, "severity": "any", "search": "", "trace_id": ""}, logs_expected,
        ordered=LOGS_ORDERED),
    "logs-one-service-warn": Case(
        "otelhouse-logs", {"service": "checkout", "severity": "WARN", "search": "", "trace_id": ""}, logs_expected,
        ordered=LOGS_ORDERED),
    "logs-search-info": Case(
        "otelhouse-logs", {"service": ALL, "severity": "INFO", "search": "REFUSED", "trace_id": ""}, logs_expected,
        ordered=LOGS_ORDERED),
    "logs-search-backslash-path": Case(
        "otelhouse-logs", {"service": ALL, "severity": "any", "search": "c:\\temp\\", "trace_id": ""},
        logs_expected, ordered=LOGS_ORDERED),
    "logs-search-quotes-and-backslash": Case(
        "otelhouse-logs", {"service": ALL, "severity": "ERROR", "search": TRICKY_TEXT.upper(), "trace_id": ""},
        logs_expected, ordered=LOGS_ORDERED),
    "logs-of-a-trace": Case(
        "otelhouse-logs", {"service": ALL, "severity": "any", "search": "", "trace_id": _trace_with_error_logs},
        logs_expected, ordered=LOGS_ORDERED),
}


def _panel_cases() -> Iterator[Any]:
    for name, case in CASES.items():
        for p in BOARDS[case.board]["panels"]:
            if len(p["targets"]) == 1:
                yield pytest.param(case, p["title"], None, id=f"{name}/{p['title']}")
                continue
            for target in p["targets"]:
                title = f"{p['title']}/{target['refId']}"
                yield pytest.param(case, p["title"], target["refId"], id=f"{name}/{title}")


def _resolve(loaded: Loaded, case: Case) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fill values that come from the data: a trace id, and an exception group's id as the
    groups table returns it (the user clicks it there)."""
    values = {k: (v(loaded) if callable(v) else v) for k, v in case.values.items()}
    extra: dict[str, Any] = {}
    if case.board == "otelhouse-exceptions" and values["group"]:
        board = BOARDS[case.board]
        groups = loaded.run(panel_sql(board, "Exception groups"), {**values, "group": ""}, board)
        chosen = next(g for g in groups if g["type"] == values["group"])
        values["group"] = chosen["group_id"]
        extra["selected"] = (chosen["type"], chosen["message"])
    return values, extra


@pytest.mark.parametrize(("case", "title", "ref_id"), list(_panel_cases()))
def test_panel_returns_the_values_of_the_spans(
    loaded: Loaded, case: Case, title: str, ref_id: str | None
) -> None:
    board = BOARDS[case.board]
    values, extra = _resolve(loaded, case)
    actual = loaded.run(panel_sql(board, title, ref_id), values, board)
    named = f"{title}/{ref_id}" if ref_id else title
    expected = case.expected(loaded, {**values, **extra}, named)
    if named == "Service map/edges":
        for row, want in zip(sorted(actual, key=lambda r: r["id"]), sorted(expected, key=lambda r: r["id"])):
            lowest, highest = want.pop("secondarystat")
            assert lowest - 1e-9 <= row.pop("secondarystat") <= highest + 1e-9, row["id"]
    ignore = ("q", "group_id", "secondarystat") if named == "Service map/edges" else ("q", "group_id")
    assert_rows(actual, expected, ordered=title in case.ordered, ignore=ignore)


def test_cases_exercise_filters_with_data(loaded: Loaded) -> None:
    """Guard against vacuous cases: every filtered scenario still selects spans."""
    for case in CASES.values():
        values, extra = _resolve(loaded, case)
        for p in BOARDS[case.board]["panels"]:
            if "selected group" in p["title"] and not values.get("group"):
                continue
            if p["title"] == "Trace" and not values.get("trace_id", "").isalnum():
                continue
            refs = [t["refId"] for t in p["targets"]] if len(p["targets"]) > 1 else [None]
            for ref in refs:
                title = f"{p['title']}/{ref}" if ref else p["title"]
                assert case.expected(loaded, {**values, **extra}, title), (case.board, title, values)


def test_exceptions_table_is_filled_by_the_migrations_view(loaded: Loaded) -> None:
    """The fixture inserts into otel_traces only (insert_spans, after the real migrations), so
    every row the Exceptions dashboard reads must come from migration 0004's materialized
    view: one per exception event, none for other events."""
    result = loaded.client.query(
        "SELECT ServiceName, TraceId, SpanId, toUnixTimestamp64Nano(Timestamp), Type, Message, Stacktrace "
        f"FROM {EXCEPTIONS_TABLE}"
    )
    expected = [(s.service, s.trace, s.span, e.ts_ns, e.attrs["exception.type"], e.attrs["exception.message"],
                 e.attrs["exception.stacktrace"]) for s in loaded.spans for e in s.exceptions]
    assert sorted(result.result_rows) == sorted(expected)


def test_exception_cases_include_spans_across_the_range_boundaries(loaded: Loaded) -> None:
    """Guard: some exceptions are in the range while their span started before it, and some
    spans in the range raised after it, so the cases tell event time from span start."""
    raised = [(s, e) for s in loaded.spans for e in s.exceptions]
    assert any(loaded.covers(e.ts_ns) and not loaded.covers(s.ts_ns) for s, e in raised)
    assert any(loaded.covers(s.ts_ns) and not loaded.covers(e.ts_ns) for s, e in raised)


def test_service_map_has_reported_and_unreported_callees(loaded: Loaded) -> None:
    board = BOARDS["otelhouse-overview"]
    rows = loaded.run(panel_sql(board, "Service map", "edges"), {"service": ALL}, board)
    assert {(r["source"], r["target"]) for r in rows} == {
        ("frontend", "checkout"), ("checkout", "postgres")
    }


def test_overview_orders_services_by_traffic(loaded: Loaded) -> None:
    board = BOARDS["otelhouse-overview"]
    rows = loaded.run(panel_sql(board, "Services"), {"service": ALL}, board)
    assert [r["requests"] for r in rows] == sorted((r["requests"] for r in rows), reverse=True)


def test_exception_groups_have_distinct_ids(loaded: Loaded) -> None:
    board = BOARDS["otelhouse-exceptions"]
    rows = loaded.run(panel_sql(board, "Exception groups"), {"service": ALL, "group": ""}, board)
    assert len({r["group_id"] for r in rows}) == len(rows) >= 3


VARIABLE_CASES = [
    ("otelhouse-overview", "service", {"service": ALL}),
    ("otelhouse-logs", "service", {"service": ALL}),
    ("otelhouse-endpoint", "operation", {"service": "checkout", "operation": ALL}),
    ("otelhouse-traces", "operation", {"service": ["frontend", "payments"], "operation": ALL, "min_ms": "",
                                       "max_ms": "", "status": "any", "trace_id": ""}),
]


@pytest.mark.parametrize(("uid", "name", "values"), VARIABLE_CASES)
def test_variable_query_lists_the_values_in_range(loaded: Loaded, uid: str, name: str, values: dict[str, Any]) -> None:
    board = BOARDS[uid]
    defined = variables(board)
    values = {**{n: "" for n in defined}, **values}
    rows = loaded.run(defined[name]["query"], values, board)
    spans = loaded.in_range()
    if uid == "otelhouse-logs":
        expected = sorted({r.service for r in loaded.logs_in_range()})
    elif name == "service":
        expected = sorted({s.service for s in spans})
    else:
        expected = sorted({s.name for s in requests(loaded, {**values, "operation": ALL})})
    assert [next(iter(r.values())) for r in rows] == expected
