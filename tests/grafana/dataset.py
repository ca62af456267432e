"""Known spans and log records for the dashboard tests, and the facts about them computed in
Python.

The rules here are written from the definitions (storage/semantics.py), not from the SQL: a
request is a Server span or a root span; an error has StatusCode Error or an HTTP status
>= 500, read from the current or the older semantic-convention attribute.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from otelhouse.storage.logs import LogColumns
from otelhouse.storage.traces import SpanColumns

NS = 1_000_000_000
IN_RANGE_S = 3600
ENDPOINTS = {
    "frontend": (("GET", "/"), ("GET", "/api/cart"), ("POST", "/api/checkout")),
    "checkout": (("POST", "/orders"), ("GET", "/orders/{id}")),
    "payments": (("POST", "/charge"),),
}
OLD_SERVICE = "legacy"


@dataclass(frozen=True)
class Event:
    ts_ns: int
    name: str
    attrs: dict[str, str]


@dataclass(frozen=True)
class Span:
    ts_ns: int
    trace: str
    span: str
    parent: str
    name: str
    kind: str
    service: str
    duration: int
    status: str = "Unset"
    status_message: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)
    events: tuple[Event, ...] = ()

    @property
    def is_request(self) -> bool:
        """An entry span of its service: kind Server or Consumer, or a root."""
        return self.kind in ("Server", "Consumer") or self.parent == ""

    @property
    def http_status(self) -> int:
        value = self.attrs.get("http.response.status_code") or self.attrs.get("http.status_code")
        return int(value) if value else 0

    @property
    def is_error(self) -> bool:
        return self.status == "Error" or self.http_status >= 500

    @property
    def exceptions(self) -> list[Event]:
        return [e for e in self.events if e.name == "exception"]


def normalize(message: str) -> str:
    """Python's reading of the exception message rule (storage/schema/0005_exception_groups.sql)."""
    quoted = "'[^']*'|\"[^\"]*\""
    if not re.fullmatch(quoted, message):
        message = re.sub(rf"\B(?:{quoted})", "<str>", message, flags=re.A)
    message = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", message, flags=re.I)
    hex_word = r"0x[0-9a-f]+|[0-9a-f]{16,}|[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*|[0-9a-f]*[a-f][0-9a-f]*[0-9][0-9a-f]*"
    message = re.sub(rf"\b(?:{hex_word})\b", "<hex>", message, flags=re.I | re.A)
    return re.sub(r"[0-9]+", "<n>", message)


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def trace(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def span(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"


def _http_attrs(i: int, method: str, route: str, code: int) -> dict[str, str]:
    if i % 3 == 0:
        return {"http.method": method, "http.route": route, "http.status_code": str(code)}
    return {"http.request.method": method, "http.route": route, "http.response.status_code": str(code)}


def _exception(rng: random.Random, ids: _Ids, at_ns: int, kind: str) -> Event:
    if kind == "KeyError":
        message = f"'user_{rng.randrange(1000)}'"
    elif kind == "ValueError":
        message = f"invalid amount {rng.uniform(1, 500):.2f} for order {ids.trace()[:8]}-0000-4000-8000-{ids.span()[:12]}"
    else:
        message = f"upstream payments timed out after {rng.randrange(1000, 5000)} ms (request {ids.span()}{ids.span()})"
    stack = (
        "Traceback (most recent call last):\n"
        f'  File "app.py", line {rng.randrange(10, 400)}, in handler\n'
        f"{kind}: {message}"
    )
    attrs = {"exception.type": kind, "exception.message": message, "exception.stacktrace": stack}
    return Event(at_ns, "exception", attrs)


def _straddling(rng: random.Random, ids: _Ids, now_s: int) -> list[Span]:
    """Spans whose exception falls on the other side of a range boundary than their start:
    one starts before the range and raises inside it, one starts inside and raises after
    it. The exceptions count by their own time, the spans (requests) by their start."""
    spans = []
    for start_ns, raised_ns in (((now_s - IN_RANGE_S - 30) * NS, (now_s - IN_RANGE_S + 20) * NS),
                                ((now_s - 2) * NS, (now_s + 3) * NS)):
        event = _exception(rng, ids, raised_ns, "ValueError")
        spans.append(Span(start_ns, ids.trace(), ids.span(), "", "settle-batch", "Internal", "payments",
                          raised_ns - start_ns + NS, "Error", "boom", events=(event,)))
    return spans


def make_spans(now_s: int, *, requests: int = 320, seed: int = 11) -> list[Span]:
    """A few hundred traces over the last 50 minutes plus some two hours old. Exceptions are
    raised during their span (after its start), two of them across a boundary of the range."""
    rng = random.Random(seed)
    ids = _Ids(rng)
    spans: list[Span] = []
    services = list(ENDPOINTS)
    for i in range(requests):
        service = rng.choices(services, weights=(5, 3, 2))[0]
        method, route = rng.choice(ENDPOINTS[service])
        ts_ns = (now_s - 60) * NS - rng.randrange(50 * 60 * NS)
        duration = int(rng.lognormvariate(17, 1.2))
        code = rng.choices((200, 404, 500, 503), weights=(70, 10, 12, 8))[0]
        status = "Error" if (code >= 500 and i % 2 == 0) or i % 37 == 0 else "Unset"
        trace, root = ids.trace(), ids.span()
        events: list[Event] = []
        if code >= 500 or status == "Error":
            kind = rng.choice(("KeyError", "ValueError", "TimeoutError"))
            events.append(_exception(rng, ids, ts_ns + rng.randrange(duration), kind))
            if i % 5 == 0:
                other = "TimeoutError" if kind != "TimeoutError" else "KeyError"
                events.append(_exception(rng, ids, ts_ns + 1000 + rng.randrange(duration - 1000), other))
        if i % 7 == 0:
            events.append(Event(ts_ns + 10, "cache miss", {"key": f"k{i}"}))
        spans.append(Span(
            ts_ns, trace, root, "", f"{method} {route}", "Server", service, duration, status,
            "boom" if status == "Error" else "", _http_attrs(i, method, route, code),
            {"service.name": service, "host.name": f"host-{i % 4}"}, tuple(events),
        ))
        spans.append(Span(ts_ns + 1000, trace, ids.span(), root, "db query", "Internal", service, duration // 3))
        if service == "frontend" and route == "/api/checkout":
            client = ids.span()
            spans.append(Span(ts_ns + 2000, trace, client, root, "POST checkout", "Client", service, duration // 2))
            order = ids.span()
            spans.append(Span(
                ts_ns + 3000, trace, order, client, "POST /orders", "Server", "checkout",
                duration // 2 - 1000, attrs=_http_attrs(i + 1, "POST", "/orders", 201),
                resource={"service.name": "checkout"},
            ))
            spans.append(Span(
                ts_ns + 4000, trace, ids.span(), order, "INSERT orders", "Client", "checkout",
                duration // 5, "Error" if i % 4 == 0 else "Unset",
                attrs={"peer.service": "postgres", "db.system": "postgresql"},
                resource={"service.name": "checkout"},
            ))
    for i in range(12):
        ts_ns = (now_s - 90) * NS - rng.randrange(40 * 60 * NS)
        spans.append(Span(ts_ns, ids.trace(), ids.span(), "", "settle-batch", "Internal", "payments",
                          int(rng.lognormvariate(19, 0.5)), "Error" if i % 4 == 0 else "Ok"))
    spans += _straddling(rng, ids, now_s)
    for i in range(20):
        ts_ns = (now_s - 2 * IN_RANGE_S) * NS - rng.randrange(600 * NS)
        service = OLD_SERVICE if i % 2 else "frontend"
        spans.append(Span(ts_ns, ids.trace(), ids.span(), "", "GET /old", "Server", service,
                          int(rng.lognormvariate(17, 1)), attrs=_http_attrs(i, "GET", "/old", 500)))
    return spans


def to_columns(spans: list[Span]) -> SpanColumns:
    columns = SpanColumns()
    for s in spans:
        columns.Timestamp.append(s.ts_ns)
        columns.TraceId.append(s.trace)
        columns.SpanId.append(s.span)
        columns.ParentSpanId.append(s.parent)
        columns.TraceState.append("")
        columns.SpanName.append(s.name)
        columns.SpanKind.append(s.kind)
        columns.ServiceName.append(s.service)
        columns.ResourceAttributes.append(s.resource)
        columns.ScopeName.append("tests.grafana")
        columns.ScopeVersion.append("1")
        columns.SpanAttributes.append(s.attrs)
        columns.Duration.append(s.duration)
        columns.StatusCode.append(s.status)
        columns.StatusMessage.append(s.status_message)
        columns.Events_Timestamp.append([e.ts_ns for e in s.events])
        columns.Events_Name.append([e.name for e in s.events])
        columns.Events_Attributes.append([e.attrs for e in s.events])
        columns.Links_TraceId.append([])
        columns.Links_SpanId.append([])
        columns.Links_TraceState.append([])
        columns.Links_Attributes.append([])
    return columns


# ------------------------------------------------------------------------------- logs

LEVEL_RANGES = {"TRACE": (1, 4), "DEBUG": (5, 8), "INFO": (9, 12), "WARN": (13, 16), "ERROR": (17, 20), "FATAL": (21, 24)}
"""The issue's severity table, written out rather than imported from the code under test."""
LOG_ONLY_SERVICE = "worker"
TRICKY_TEXT = "\\' OR '1'='1"
"""In one ERROR record's body: quotes and a backslash, which a ``sqlstring`` binding would
let out of the SQL literal."""


@dataclass(frozen=True)
class LogRecord:
    ts_ns: int
    service: str
    severity_number: int
    severity_text: str
    body: str
    trace: str = ""
    span: str = ""

    @property
    def level(self) -> str:
        """The level name; UNSPECIFIED for 0 and numbers above 24."""
        return next((name for name, (low, high) in LEVEL_RANGES.items() if low <= self.severity_number <= high),
                     "UNSPECIFIED")

    @property
    def is_error(self) -> bool:
        return self.level in ("ERROR", "FATAL")

    def contains(self, text: str) -> bool:
        """Case-insensitive substring, ASCII letters folded and every other byte exact."""
        return text.encode().lower() in self.body.encode().lower()


_BODIES = (
    "Connection REFUSED by db-{n}",
    "user 'alice' logged in from {n}",
    "wrote C:\\temp\\report-{n}.csv",
    "résumé ÉTÉ uploaded ({n} bytes)",
    "GET /api/cart took {n} ms",
    "retrying after connection refused: attempt {n}",
    "50% done, {n} left",
)


def _severity(rng: random.Random, i: int) -> tuple[int, str]:
    number = rng.choice((0, 30, *range(1, 25))) if i % 9 == 0 else rng.choice((5, 9, 9, 10, 13, 17, 18, 21))
    level = next((name for name, (low, high) in LEVEL_RANGES.items() if low <= number <= high), "")
    text = (level.lower(), level, "")[i % 3]
    return number, text


def make_logs(now_s: int, spans: list[Span], *, records: int = 420, seed: int = 12) -> list[LogRecord]:
    """Records without a trace over the last 50 minutes (including a service with no spans and
    numbers 0 and 30, which have no level), records of a third of the requests' traces (an
    ERROR among them when the request failed), one with :data:`TRICKY_TEXT`, and some two
    hours old."""
    rng = random.Random(seed)
    logs: list[LogRecord] = []
    services = [*ENDPOINTS, LOG_ONLY_SERVICE]
    for i in range(records):
        number, text = _severity(rng, i)
        body = rng.choice(_BODIES).format(n=rng.randrange(10_000))
        ts_ns = (now_s - 30) * NS - rng.randrange(50 * 60 * NS)
        logs.append(LogRecord(ts_ns, rng.choices(services, weights=(5, 3, 2, 1))[0], number, text, body))
    requests = [s for s in spans if s.kind == "Server" and s.parent == "" and s.ts_ns > (now_s - IN_RANGE_S) * NS]
    for i, span in enumerate(requests[::3]):
        logs.append(LogRecord(span.ts_ns + 500, span.service, 9, "INFO", f"handling {span.name}", span.trace, span.span))
        if span.is_error:
            logs.append(LogRecord(span.ts_ns + 900, span.service, 17 + i % 8, "ERROR",
                                  f"request failed: upstream connection refused ({i})", span.trace, span.span))
    logs.append(LogRecord((now_s - 600) * NS + 123, "payments", 17, "ERROR", f"rejected input {TRICKY_TEXT} -- as typed"))
    for i in range(15):
        ts_ns = (now_s - 2 * IN_RANGE_S) * NS - rng.randrange(600 * NS)
        logs.append(LogRecord(ts_ns, OLD_SERVICE if i % 2 else "frontend", 17, "ERROR", "Connection refused long ago"))
    return logs


def to_log_columns(logs: list[LogRecord]) -> LogColumns:
    columns = LogColumns()
    for r in logs:
        columns.Timestamp.append(r.ts_ns)
        columns.TraceId.append(r.trace)
        columns.SpanId.append(r.span)
        columns.TraceFlags.append(1 if r.trace else 0)
        columns.SeverityText.append(r.severity_text)
        columns.SeverityNumber.append(r.severity_number)
        columns.ServiceName.append(r.service)
        columns.Body.append(r.body)
        columns.ResourceSchemaUrl.append("")
        columns.ResourceAttributes.append({"service.name": r.service})
        columns.ScopeSchemaUrl.append("")
        columns.ScopeName.append("tests.grafana")
        columns.ScopeVersion.append("1")
        columns.ScopeAttributes.append({})
        columns.LogAttributes.append({})
        columns.EventName.append("")
    return columns
