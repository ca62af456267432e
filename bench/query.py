"""Query API latency over a large embedded store (run by hand, not in CI).

Generates N spans (default 10M) straight inside ClickHouse with ``INSERT ... SELECT FROM
numbers()`` — eight-span traces across four services, HTTP routes, client calls, ~2-5% errors
with exception events — then times the real app's endpoints through FastAPI's TestClient:
median (and min/max) of 5 warm runs each. Targets (issue #3): aggregates over 10M spans
< 0.5 s, trace by id < 50 ms.

    .venv/bin/python bench/query.py --spans 1000000
    .venv/bin/python bench/query.py --data-dir /tmp/bench10m   # keeps and reuses the store

chdb owns one data directory per process: run it while no other otelhouse process uses
``--data-dir``. Generating 10M spans takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from otelhouse.settings import Settings
from otelhouse.query.app import create_app
from otelhouse.storage import migrate, open_client
from otelhouse.storage.tables import SERVICE_EDGES_TABLE, SERVICE_EDGES_VIEW

SPANS_PER_TRACE = 8
WINDOW_S = 50 * 60
CHUNK = 1_000_000

# Span i of every trace: service, kind, parent index (-1: root), name.
LAYOUT = (
    ("frontend", "Server", -1, ""),
    ("frontend", "Client", 0, "HTTP GET"),
    ("cart", "Server", 1, "GET /cart/{id}"),
    ("cart", "Client", 2, "SELECT cart_items"),
    ("payment", "Server", 1, "POST /charge"),
    ("payment", "Client", 4, "stripe.charge"),
    ("inventory", "Server", 1, "GET /stock/{sku}"),
    ("inventory", "Internal", 6, "reserve"),
)
ROUTES = ("/api/cart", "/api/checkout", "/api/products/{id}", "/api/orders/{id}", "/api/users/{id}")
METHODS = ("GET", "POST", "GET", "GET", "PUT")


def _array(values: tuple) -> str:
    """A SQL array literal of code constants (never user input)."""
    return "[" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values) + "]"


GENERATE_SQL = f"""
INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName,
    SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes,
    Duration, StatusCode, StatusMessage, `Events.Timestamp`, `Events.Name`,
    `Events.Attributes`, `Links.TraceId`, `Links.SpanId`, `Links.TraceState`,
    `Links.Attributes`)
SELECT
    fromUnixTimestamp64Nano(start_ns) AS Timestamp,
    lower(hex(MD5(toString(t)))) AS TraceId,
    lower(leftPad(hex(cityHash64(n)), 16, '0')) AS SpanId,
    if(parent < 0, '',
       lower(leftPad(hex(cityHash64(toUInt64(t * {SPANS_PER_TRACE} + parent))), 16, '0'))),
    '' AS TraceState,
    if(i = 0, concat(method, ' ', route), {_array(tuple(s[3] for s in LAYOUT))}[i + 1]),
    {_array(tuple(s[1] for s in LAYOUT))}[i + 1] AS SpanKind,
    service AS ServiceName,
    map('service.name', service, 'service.version', '1.4.2', 'host.name',
        concat(service, '-', toString(t % 3)), 'telemetry.sdk.language', 'python'),
    concat('opentelemetry.instrumentation.', service) AS ScopeName,
    '0.66b0' AS ScopeVersion,
    if(kind = 'Server',
       map('http.request.method', method, 'http.route', route,
           'http.response.status_code', toString(http_status),
           'client.address', concat('10.0.', toString(t % 256), '.', toString(n % 200))),
       map('peer.service', 'downstream', 'db.system', 'postgresql')) AS SpanAttributes,
    duration_ns AS Duration,
    if(failed, 'Error', 'Unset') AS StatusCode,
    if(failed, 'payment declined', '') AS StatusMessage,
    if(failed, [fromUnixTimestamp64Nano(start_ns + 1000)], []),
    if(failed, ['exception'], []),
    if(failed, [map('exception.type', exception_type,
                    'exception.message', concat('order ', toString(t % 100000), ' failed'),
                    'exception.stacktrace', concat('Traceback (most recent call last):\\n',
                        '  File "app.py", line 42, in handler\\n', exception_type))], []),
    [], [], [], []
FROM (
    SELECT
        number AS n,
        intDiv(n, {SPANS_PER_TRACE}) AS t,
        n % {SPANS_PER_TRACE} AS i,
        {_array(tuple(s[0] for s in LAYOUT))}[i + 1] AS service,
        {_array(tuple(s[1] for s in LAYOUT))}[i + 1] AS kind,
        {_array(tuple(s[2] for s in LAYOUT))}[i + 1] AS parent,
        cityHash64(t, 7) % {len(ROUTES)} AS r,
        {_array(ROUTES)}[r + 1] AS route,
        {_array(METHODS)}[r + 1] AS method,
        {{first_ns:Int64}} + intDiv(t * {{spacing_ns:Int64}}, 1000) + i * 2000000 AS start_ns,
        toUInt64((2 + 400 * pow((cityHash64(n, 1) % 10000) / 10000, 3))
                 * if(i = 0, 4, 1) * 1000000) AS duration_ns,
        cityHash64(n, 2) % 1000 < if(service = 'payment', 50, 10) AS failed,
        multiIf(failed AND kind = 'Server', 500,
                cityHash64(n, 3) % 100 < 3, 404, 200) AS http_status,
        {_array(("CardDeclined", "TimeoutError", "KeyError", "ValueError"))}[
            cityHash64(n, 4) % 4 + 1] AS exception_type
    FROM numbers({{offset:UInt64}}, {{count:UInt64}})
)
"""


@dataclass(frozen=True)
class Timing:
    name: str
    path: str
    median_ms: float
    min_ms: float
    max_ms: float
    size: int


def generate(settings: Settings, spans: int) -> None:
    config = settings.storage_config()
    admin = open_client(config, database="")
    migrate(admin, config)
    admin.close()
    client = open_client(config)
    try:
        stored = int(client.query("SELECT count() FROM otel_traces").result_rows[0][0])
        if stored == spans:
            print(f"reusing {stored:,} spans in {settings.data_dir}")
            return
        client.command("TRUNCATE TABLE otel_traces")
        client.command("TRUNCATE TABLE otel_traces_trace_id_ts")
        traces = -(-spans // SPANS_PER_TRACE)
        first_ns = time.time_ns() - WINDOW_S * 10**9
        spacing = WINDOW_S * 10**12 // traces  # ns per trace, times 1000 for precision
        began = time.perf_counter()
        for offset in range(0, spans, CHUNK):
            count = min(CHUNK, spans - offset)
            client.command(
                GENERATE_SQL,
                parameters={
                    "offset": offset, "count": count, "first_ns": first_ns, "spacing_ns": spacing
                },
            )
            done = offset + count
            rate = done / (time.perf_counter() - began)
            print(f"  generated {done:>12,} / {spans:,} spans ({rate:,.0f} spans/s)", flush=True)
        roll_up_service_map(client)
    finally:
        client.close()


def roll_up_service_map(client: Client) -> None:
    """The service map's rollup covered the generated minutes (empty) before their spans were
    written in the past: empty it and let it cover them again, as it would have live."""
    client.command(f"TRUNCATE TABLE {SERVICE_EDGES_TABLE}")
    client.command(f"SYSTEM REFRESH VIEW {SERVICE_EDGES_VIEW}")
    client.command(f"SYSTEM WAIT VIEW {SERVICE_EDGES_VIEW}")


def timed(api: TestClient, name: str, path: str, params: dict, runs: int) -> Timing:
    response = api.get(path, params=params)  # warm-up, and a check that it works at all
    if response.status_code != 200:
        raise SystemExit(f"{name}: {path} answered {response.status_code}: {response.text[:300]}")
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        api.get(path, params=params)
        samples.append((time.perf_counter() - began) * 1000)
    return Timing(
        name, path, statistics.median(samples), min(samples), max(samples), len(response.content)
    )


def run(settings: Settings, runs: int) -> list[Timing]:
    client = open_client(settings.storage_config())
    lo, hi, trace_id = client.query(
        "SELECT toUnixTimestamp64Milli(min(Timestamp)), toUnixTimestamp64Milli(max(Timestamp)),"
        " any(TraceId) FROM otel_traces WHERE SpanName = 'POST /charge'"
    ).result_rows[0]
    client.close()
    window = {"start": str(lo), "end": str(hi + 1000)}
    micros = {"start": str(lo * 1000), "end": str((hi + 1000) * 1000)}
    cases = [
        ("services", "/api/v1/services", window),
        ("operations", "/api/v1/operations", window),
        ("operations of a service", "/api/v1/operations", {**window, "service": "payment"}),
        ("latency series (1 min steps)", "/api/v1/latency", {**window, "step": "60"}),
        ("latency, one operation", "/api/v1/latency",
         {**window, "service": "payment", "operation": "POST /charge", "step": "60"}),
        ("errors by operation", "/api/v1/errors", window),
        ("exceptions", "/api/v1/exceptions", window),
        ("summary", "/api/v1/summary", window),
        ("service map", "/api/v1/service-map", window),
        ("top endpoints", "/api/v1/endpoints/top", window),
        ("trace search, newest 20", "/api/v1/traces", window),
        ("trace search, service + error", "/api/v1/traces",
         {**window, "service": "payment", "status": "error"}),
        ("trace search, attr + duration", "/api/v1/traces",
         {**window, "attr": "http.route:/api/checkout", "min_duration_ms": "500"}),
        ("trace search, slowest 20", "/api/v1/traces", {**window, "order": "slowest"}),
        ("trace by id", f"/api/v1/traces/{trace_id}", {}),
        ("jaeger search, 20 whole traces", "/jaeger/api/traces",
         {**micros, "service": "payment", "operation": "POST /charge"}),
        ("jaeger trace by id", f"/jaeger/api/traces/{trace_id}", {}),
        ("jaeger services (all retention)", "/jaeger/api/services", {}),
        ("jaeger operations of a service", "/jaeger/api/operations", {"service": "payment"}),
    ]
    with TestClient(create_app(settings.api_config(), settings.storage_config())) as api:
        return [timed(api, name, path, params, runs) for name, path, params in cases]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans to generate")
    parser.add_argument(
        "--data-dir", type=Path, help="store to use and keep (default: a temporary directory)"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per endpoint")
    args = parser.parse_args(argv)
    if args.spans < SPANS_PER_TRACE or args.runs < 1:
        parser.error(f"--spans must be at least {SPANS_PER_TRACE} and --runs at least 1")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="otelhouse-bench-"))
    settings = Settings(data_dir=data_dir, database="bench", retention_days=0)
    try:
        print(f"store: {data_dir}")
        generate(settings, args.spans)
        timings = run(settings, args.runs)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"\n{args.spans:,} spans, median of {args.runs} warm runs\n")
    print(f"| {'query':<32} | {'median ms':>9} | {'min ms':>8} | {'max ms':>8} | {'bytes':>8} |")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    for t in timings:
        print(
            f"| {t.name:<32} | {t.median_ms:>9.1f} | {t.min_ms:>8.1f} | {t.max_ms:>8.1f}"
            f" | {t.size:>8,} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
