"""Known traces for the trace API tests: specs, their ``otel_traces`` columns, and the facts
the tests expect (error rule, summaries), computed here from the specs, not by the server."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

from otelhouse.storage.traces import SpanColumns, insert_spans

SERVICES = ("frontend", "cart", "payment", "inventory")
OPERATIONS = ("GET /cart", "POST /checkout", "charge", "reserve", "SELECT stock", "render")
ROUTES = ("/cart", "/checkout", "/orders/{id}")
KINDS = ("Server", "Client", "Internal", "Producer", "Consumer", "Unspecified")


@dataclass
class SpanSpec:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    kind: str
    start_ns: int
    duration_ns: int
    status_code: str = "Unset"
    status_message: str = ""
    trace_state: str = ""
    scope_name: str = "shop.instrumentation"
    scope_version: str = "1.2.3"
    attributes: dict[str, str] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    links: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def is_error(self) -> bool:
        """otelhouse's rule, restated independently: status Error or HTTP status >= 500."""
        code = self.attributes.get("http.response.status_code") or self.attributes.get(
            "http.status_code", "0"
        )
        return self.status_code == "Error" or (code.isdigit() and int(code) >= 500)


def to_columns(specs: list[SpanSpec]) -> SpanColumns:
    columns = SpanColumns()
    for s in specs:
        for name, value in (
            ("Timestamp", s.start_ns),
            ("TraceId", s.trace_id),
            ("SpanId", s.span_id),
            ("ParentSpanId", s.parent_span_id),
            ("TraceState", s.trace_state),
            ("SpanName", s.name),
            ("SpanKind", s.kind),
            ("ServiceName", s.service),
            ("ResourceAttributes", {"service.name": s.service, **s.resource}),
            ("ScopeName", s.scope_name),
            ("ScopeVersion", s.scope_version),
            ("SpanAttributes", s.attributes),
            ("Duration", s.duration_ns),
            ("StatusCode", s.status_code),
            ("StatusMessage", s.status_message),
            ("Events_Timestamp", [e[0] for e in s.events]),
            ("Events_Name", [e[1] for e in s.events]),
            ("Events_Attributes", [e[2] for e in s.events]),
            ("Links_TraceId", [link[0] for link in s.links]),
            ("Links_SpanId", [link[1] for link in s.links]),
            ("Links_TraceState", [link[2] for link in s.links]),
            ("Links_Attributes", [link[3] for link in s.links]),
        ):
            getattr(columns, name).append(value)
    return columns


def random_traces(rng: random.Random, now_ns: int, count: int) -> list[SpanSpec]:
    """``count`` traces of 2-7 spans over the last 30 minutes: a root server span and children
    across services, with HTTP attributes, some failures (by status or HTTP 5xx), exception
    events and links to earlier traces."""
    specs: list[SpanSpec] = []
    for t in range(count):
        trace_id = rng.getrandbits(128).to_bytes(16, "big").hex()
        start = now_ns - rng.randrange(60, 1800) * 1_000_000_000 - rng.randrange(10**9)
        root_duration = rng.randrange(2_000_000, 900_000_000)
        trace: list[SpanSpec] = []
        for i in range(rng.randrange(2, 8)):
            parent = rng.choice(trace) if trace else None
            offset = rng.randrange(0, root_duration // 2) if parent else 0
            status_http = rng.choice(("200", "200", "404", "500", "503")) if i % 2 == 0 else ""
            span = SpanSpec(
                trace_id=trace_id,
                span_id=rng.getrandbits(64).to_bytes(8, "big").hex(),
                parent_span_id=parent.span_id if parent else "",
                name=rng.choice(OPERATIONS),
                service=SERVICES[0] if parent is None else rng.choice(SERVICES),
                kind="Server" if parent is None else rng.choice(KINDS),
                start_ns=start + offset,
                duration_ns=root_duration if parent is None else rng.randrange(1000, root_duration),
                status_code=rng.choice(("Unset", "Unset", "Ok", "Error")),
                attributes={
                    "customer.tier": rng.choice(("gold", "silver")),
                    "retry.count": str(rng.randrange(0, 4)),
                    "ratio": rng.choice(("0.25", "1.5", "2e-05")),
                    "cached": rng.choice(("true", "false")),
                    **({"http.response.status_code": status_http} if status_http else {}),
                    **({"http.route": rng.choice(ROUTES)} if parent is None else {}),
                },
                resource={"host.name": f"host-{rng.randrange(2)}", "process.pid": "4242"},
                trace_state=rng.choice(("", "vendor=value")),
            )
            if span.status_code == "Error":
                span.status_message = "boom"
                span.events.append(
                    (
                        span.start_ns + 1_500,
                        "exception",
                        {"exception.type": "ValueError", "exception.message": f"bad {t}"},
                    )
                )
            if rng.random() < 0.3:
                span.events.append((span.start_ns + 2_000, "cache.miss", {"key.length": "12"}))
            if specs and rng.random() < 0.3:
                earlier = rng.choice(specs)
                span.links.append((earlier.trace_id, earlier.span_id, "", {"link.kind": "retry"}))
            trace.append(span)
        specs.extend(trace)
    return specs


def by_trace(specs: list[SpanSpec]) -> dict[str, list[SpanSpec]]:
    """Spans per trace, each trace ordered by start as the API orders it."""
    traces: dict[str, list[SpanSpec]] = {}
    for spec in specs:
        traces.setdefault(spec.trace_id, []).append(spec)
    return {
        tid: sorted(spans, key=lambda s: (s.start_ns, s.span_id)) for tid, spans in traces.items()
    }


def insert_shop(client: Client) -> list[SpanSpec]:
    """Store 40 random traces from the last 30 minutes plus one from 3 hours ago; return the
    40 recent ones."""
    rng = random.Random(7)
    now = time.time_ns()
    recent = random_traces(rng, now, 40)
    insert_spans(client, to_columns(recent + random_traces(rng, now - 3 * 3600 * 10**9, 1)))
    return recent
