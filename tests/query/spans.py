"""Spans with known properties for the query tests, and the rules to evaluate them in Python.

The tests compute every expected number from these objects with plain Python and numpy —
never by running SQL — so a wrong query cannot agree with its own expectation.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from otelhouse.storage.traces import SpanColumns

RELATIVE_ACCURACY = 0.01


@dataclass(frozen=True)
class Event:
    time_ns: int
    name: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    start_ns: int
    duration_ns: int
    trace_id: str
    span_id: str
    parent_id: str = ""
    kind: str = "Server"
    status: str = "Unset"
    attributes: dict[str, str] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    status_message: str = ""

    @property
    def http_status(self) -> int:
        value = self.attributes.get("http.response.status_code") or self.attributes.get(
            "http.status_code", ""
        )
        return int(value) if value.isdigit() else 0

    @property
    def is_error(self) -> bool:
        return self.status == "Error" or self.http_status >= 500

    @property
    def is_request(self) -> bool:
        """An entry span of its service: kind Server or Consumer, or a root."""
        return self.kind in ("Server", "Consumer") or self.parent_id == ""

    @property
    def method(self) -> str:
        return self.attributes.get("http.request.method") or self.attributes.get("http.method", "")

    @property
    def route(self) -> str:
        return self.attributes.get("http.route") or self.name


def random_id(rng: random.Random, hex_chars: int) -> str:
    return f"{rng.getrandbits(hex_chars * 4):0{hex_chars}x}"


def to_columns(spans: Iterable[Span]) -> SpanColumns:
    columns = SpanColumns()
    for span in spans:
        for name, value in (
            ("Timestamp", span.start_ns),
            ("TraceId", span.trace_id),
            ("SpanId", span.span_id),
            ("ParentSpanId", span.parent_id),
            ("TraceState", ""),
            ("SpanName", span.name),
            ("SpanKind", span.kind),
            ("ServiceName", span.service),
            ("ResourceAttributes", {"service.name": span.service}),
            ("ScopeName", "tests"),
            ("ScopeVersion", ""),
            ("SpanAttributes", span.attributes),
            ("Duration", span.duration_ns),
            ("StatusCode", span.status),
            ("StatusMessage", span.status_message),
            ("Events_Timestamp", [e.time_ns for e in span.events]),
            ("Events_Name", [e.name for e in span.events]),
            ("Events_Attributes", [e.attributes for e in span.events]),
            ("Links_TraceId", []),
            ("Links_SpanId", []),
            ("Links_TraceState", []),
            ("Links_Attributes", []),
        ):
            getattr(columns, name).append(value)
    return columns


def generate(
    count: int, *, start_ns: int, end_ns: int, seed: int = 7, services: int = 3
) -> list[Span]:
    """``count`` spans spread over ``[start_ns, end_ns)``: several services and operations,
    lognormal durations (some zero), server/internal/client kinds, OTel errors, HTTP 5xx
    (errors) and 4xx (not errors)."""
    rng = random.Random(seed)
    spans = []
    for _ in range(count):
        service = f"svc-{rng.randrange(services)}"
        operation = f"op-{rng.randrange(4)}"
        kind = rng.choice(("Server", "Server", "Internal", "Client", "Consumer"))
        attributes = {}
        if kind in ("Server", "Client"):
            attributes = {
                "http.request.method": rng.choice(("GET", "POST")),
                "http.route": f"/{operation}/{{id}}",
                "http.response.status_code": str(rng.choice((200, 200, 200, 201, 404, 500, 503))),
            }
            if rng.random() < 0.3:
                attributes["client.address"] = f"10.0.0.{rng.randrange(256)}"
        spans.append(
            Span(
                service=service,
                name=operation,
                start_ns=rng.randrange(start_ns, end_ns),
                duration_ns=0 if rng.random() < 0.02 else int(rng.lognormvariate(15, 1.5)),
                trace_id=random_id(rng, 32),
                span_id=random_id(rng, 16),
                parent_id=random_id(rng, 16) if kind != "Server" or rng.random() < 0.5 else "",
                kind=kind,
                status="Error" if rng.random() < 0.05 else rng.choice(("Unset", "Ok")),
                attributes=attributes,
            )
        )
    return spans


@dataclass(frozen=True)
class Window:
    """An explicit query range ending at the next minute boundary, so expected rates and
    buckets do not depend on when the request happens to run."""

    start_ms: int
    end_ms: int

    @classmethod
    def last(cls, minutes: int) -> Window:
        end_ms = (time.time_ns() // 60_000_000_000 + 1) * 60_000
        return cls(end_ms - minutes * 60_000, end_ms)

    @property
    def start_ns(self) -> int:
        return self.start_ms * 1_000_000

    @property
    def end_ns(self) -> int:
        return self.end_ms * 1_000_000

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000

    @property
    def params(self) -> dict[str, int]:
        return {"start": self.start_ms, "end": self.end_ms}


def assert_percentiles(
    got_ms: Iterable[float | None], durations_ns: Iterable[int], levels: Iterable[float]
) -> None:
    """Each value within RELATIVE_ACCURACY of an order statistic between numpy's lower and
    higher neighbours of rank q·(n-1): the bound ``query/stats.py`` documents."""
    values = np.asarray(list(durations_ns), dtype=np.float64) / 1e6
    for got, level in zip(got_ms, levels, strict=True):
        if values.size == 0:
            assert got is None
            continue
        low = np.quantile(values, level, method="lower")
        high = np.quantile(values, level, method="higher")
        slack = 1e-9
        lowest, highest = low * (1 - RELATIVE_ACCURACY), high * (1 + RELATIVE_ACCURACY)
        assert lowest - slack <= got <= highest + slack, (
            f"p{level * 100:g}: {got} not within 1% of [{low}, {high}]"
        )
