"""Cross-service traces with known request-level numbers: a caller (``shop``) whose outgoing
calls get 404/409/500 answers, a callee (``inventory``) that fails, a third service
(``pricing``) called sometimes, a queue consumer (``audit``), and callees that send no spans
(``postgres`` by ``peer.service``, ``payments.example.com`` by ``server.address``).

Everything a test expects is computed here from the specs in Python, never by SQL."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from otelhouse.storage.tables import SERVICE_EDGES_TABLE, SERVICE_EDGES_VIEW
from tests.query.trace_builder import SpanSpec

ENTRY_KINDS = ("Server", "Consumer")
TRACES = 120


def pause_rollup(client: Client) -> None:
    """Stop the service map's rollup (cancelling a refresh in progress) and empty it: spans
    a test stores are dated in the past, after the view's first refresh already covered
    those minutes, so without this they would count as arriving too late for the map."""
    client.command(f"SYSTEM STOP VIEW {SERVICE_EDGES_VIEW}")
    client.command(f"TRUNCATE TABLE {SERVICE_EDGES_TABLE}")


def refresh_rollup(client: Client) -> None:
    """Run the rollup once now, to its usual bound (minutes that ended 5 minutes ago)."""
    client.command(f"SYSTEM START VIEW {SERVICE_EDGES_VIEW}")
    client.command(f"SYSTEM REFRESH VIEW {SERVICE_EDGES_VIEW}")
    client.command(f"SYSTEM WAIT VIEW {SERVICE_EDGES_VIEW}")


def is_request(span: SpanSpec) -> bool:
    """An entry span: Server or Consumer, or a root."""
    return span.kind in ENTRY_KINDS or span.parent_span_id == ""


@dataclass
class CrossService:
    spans: list[SpanSpec]
    start_ms: int
    end_ms: int

    @property
    def params(self) -> dict[str, int]:
        return {"start": self.start_ms, "end": self.end_ms}

    def requests(self, service: str | None = None) -> list[SpanSpec]:
        return [s for s in self.spans if is_request(s) and service in (None, s.service)]

    def edges(self) -> dict[tuple[str, str], list[SpanSpec]]:
        """(caller, callee) → the spans that stand for the calls (the callee's entry span,
        or the unanswered client span)."""
        by_id = {s.span_id: s for s in self.spans}
        answered = {s.parent_span_id for s in self.spans if is_request(s) and s.parent_span_id}
        calls: dict[tuple[str, str], list[SpanSpec]] = defaultdict(list)
        for span in self.spans:
            parent = by_id.get(span.parent_span_id)
            if is_request(span) and parent is not None and parent.service != span.service:
                calls[parent.service, span.service].append(span)
            peer = span.attributes.get("peer.service") or span.attributes.get("server.address")
            if span.kind in ("Client", "Producer") and peer and span.span_id not in answered:
                calls[span.service, peer].append(span)
        return dict(calls)


def _id(rng: random.Random, hex_chars: int) -> str:
    return f"{rng.getrandbits(hex_chars * 4):0{hex_chars}x}"


def build(seed: int = 11) -> CrossService:
    """:data:`TRACES` traces spread over the last ten minutes."""
    rng = random.Random(seed)
    now_ns = time.time_ns()
    start_ns = now_ns - 600 * 10**9
    spans: list[SpanSpec] = []

    def span(trace: str, parent: SpanSpec | None, service: str, name: str, kind: str,
             at_ns: int, status: int = 0, error: bool = False,
             **attributes: str) -> SpanSpec:
        attrs = dict(attributes)
        if status:
            attrs["http.response.status_code"] = str(status)
        made = SpanSpec(
            trace_id=trace,
            span_id=_id(rng, 16),
            parent_span_id=parent.span_id if parent else "",
            name=name,
            service=service,
            kind=kind,
            start_ns=at_ns,
            duration_ns=rng.randrange(200_000, 80_000_000),
            status_code="Error" if error else "Unset",
            status_message="boom" if error else "",
            attributes=attrs,
        )
        spans.append(made)
        return made

    for i in range(TRACES):
        trace = _id(rng, 32)
        at = start_ns + i * (590 * 10**9 // TRACES) + rng.randrange(10**6)
        answer = (200, 200, 200, 404, 409, 500)[i % 6]
        shop_status = 500 if answer == 500 and i % 12 == 5 else (502 if i % 17 == 3 else 200)
        root = span(trace, None, "shop", "POST /checkout", "Server", at, shop_status,
                    **{"http.route": "/checkout", "http.request.method": "POST"})
        span(trace, root, "shop", "render", "Internal", at + 10)
        call = span(trace, root, "shop", "GET", "Client", at + 20, answer,
                    **{"server.address": "127.0.0.1"})
        served = span(trace, call, "inventory", "GET /stock/{sku}", "Server", at + 30, answer,
                      **{"http.route": "/stock/{sku}", "http.request.method": "GET"})
        span(trace, served, "inventory", "SELECT stock", "Client", at + 40,
             error=i % 10 == 0, **{"peer.service": "postgres"})
        if i % 3 == 0:
            price_call = span(trace, root, "shop", "GET", "Client", at + 50, 200)
            span(trace, price_call, "pricing", "GET /price", "Server", at + 60, 200,
                 error=i % 9 == 0)
        if i % 4 == 0:
            span(trace, root, "shop", "POST", "Client", at + 70, 503 if i % 8 == 0 else 201,
                 **{"server.address": "payments.example.com"})
        if i % 5 == 0:
            sent = span(trace, served, "inventory", "reserved publish", "Producer", at + 80,
                        **{"messaging.system": "kafka"})
            span(trace, sent, "audit", "reserved process", "Consumer", at + 90, error=i % 10 == 0)
    return CrossService(spans, start_ns // 10**6, now_ns // 10**6 + 1000)


def status_counts(spans: list[SpanSpec]) -> Counter[int]:
    return Counter(int(s.attributes.get("http.response.status_code", "0")) for s in spans)
