"""What tracing costs a request: the demo's inventory ``GET /stock/{sku}`` endpoint, with and
without ``instrument_app`` (and with and without its HTTP server metrics), in µs of latency and
of process CPU per request.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/overhead.py                      # OTLP/gRPC into a discarding sink
    .venv/bin/python bench/overhead.py --sink noop          # SDK and instrumentation only
    .venv/bin/python bench/overhead.py --endpoint 127.0.0.1:4317   # a running otelhouse serve

Requests are ASGI calls made in-process, without sockets: HTTP parsing and the network would
add the same cost with and without tracing and only blur the difference. CPU is the whole
process's (``time.process_time``), so the batch processor's export thread counts; each run
ends with a flush, so every span a run created is exported inside it. Configurations take
turns run by run, so drift on a shared machine hits them alike; the table shows medians.

The default sink is an OTLP/gRPC server in a child process that answers every export and
keeps nothing: serialising and sending are measured, the receiver's own work is not. Metrics
are collected and exported by every run's flush too (the periodic reader's interval is longer
than a run), so a run pays for one export of the histogram, as an app does once a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otelhouse.instrumentation import Instrumentation, instrument_app
from otelhouse.instrumentation.metric_export import metrics_export_wanted
from otelhouse.demo.services import create_inventory_app
from otelhouse.receiver.metric_points import METRICS_SERVICE
from otelhouse.receiver.traces import TRACE_SERVICE

TARGET_BUDGET_US = 50.0


class DiscardExporter(SpanExporter):
    """Takes spans and drops them: what is left is the SDK's and the instrumentation's cost."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class DiscardMetricExporter(MetricExporter):
    """Takes collected metrics and drops them, for ``--sink noop``."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def serve_discard_sink() -> None:
    """Child process mode: OTLP/gRPC trace and metrics services that acknowledge and forget."""
    import grpc

    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(service, {"Export": handler})
            for service in (TRACE_SERVICE, METRICS_SERVICE)
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


def start_discard_sink() -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--discard-sink"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, f"127.0.0.1:{child.stdout.readline().strip()}"


@dataclass
class Config:
    """One way to serve the endpoint; ``instrument`` is None for the uninstrumented app."""

    name: str
    instrument: Callable[[FastAPI], Instrumentation] | None
    app: FastAPI = field(init=False)
    handle: Instrumentation | None = field(init=False, default=None)
    wall_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = create_inventory_app()
        if self.instrument:
            self.handle = self.instrument(self.app)

    def flush(self) -> None:
        """Export what the run recorded: spans, and metrics wherever they are recorded."""
        if self.handle is None:
            return
        self.handle.force_flush()
        if self.handle.metrics is None and self.handle.meter_provider is not None:
            self.handle.meter_provider.force_flush()


def configs(
    names: list[str], exporter: Callable[[dict[str, Any]], dict[str, Any]]
) -> list[Config]:
    """Each instrumented configuration gets its own exporter and providers; none exports logs
(they would all be the root logger's, and the sink takes spans and metrics only)."""
    options = CONFIGS
    chosen = []
    for name in names:
        settings = options[name]
        instrument = (
            None
            if settings is None
            else lambda app, s=settings: instrument_app(
                app, "bench", export_logs=False, **{**s, **exporter(s)}
            )
        )
        chosen.append(Config(name, instrument))
    return chosen


CONFIGS: dict[str, dict[str, Any] | None] = {
    "bare": None,
    "defaults": {},
    "metrics": {"export_metrics": True},
    "minimal": {"trace_header": None, "correlate_logs": False, "export_metrics": False},
    "defaults-sdk": {"exporter": "sdk"},
    "minimal-sdk": {
        "trace_header": None, "correlate_logs": False, "export_metrics": False, "exporter": "sdk"
    },
    "contrib": {"engine": "contrib"},
    "contrib-all": {"engine": "contrib", "exclude_spans": ()},
}
"""``defaults`` is the helper as shipped (lean server span, trace-id header, log correlation;
the HTTP server metrics only if ``OTEL_METRICS_EXPORTER=otlp`` is set); ``metrics`` is the
defaults with ``export_metrics=True``; ``minimal`` drops header, log correlation and metrics; ``contrib`` uses opentelemetry-instrumentation-
fastapi with send/receive spans excluded, ``contrib-all`` with them kept. The ``-sdk``
variants export with the SDK's OTLP/gRPC exporter instead of the helper's direct wire
encoding (with ``--sink noop`` they equal their plain variants)."""

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/stock/apple",
    "raw_path": b"/stock/apple",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench.local"), (b"user-agent", b"overhead-bench/1.0")],
    "client": ("127.0.0.1", 51000),
    "server": ("127.0.0.1", 8000),
}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


TRACEPARENT = (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
"""What a call from an instrumented service carries: the server span continues that trace."""


async def one_run(config: Config, requests: int, scope: dict[str, Any]) -> None:
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        await config.app(dict(scope), receive, send)
    config.flush()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if statuses != [200] * requests:
        raise SystemExit(f"{config.name}: unexpected answers {sorted(set(statuses))}")
    config.wall_us.append(wall / requests * 1e6)
    config.cpu_us.append(cpu / requests * 1e6)


async def measure(
    chosen: list[Config], runs: int, requests: int, warmup: int, scope: dict[str, Any]
) -> None:
    for config in chosen:
        await one_run(config, warmup, scope)
        config.wall_us.clear()
        config.cpu_us.clear()
    for _ in range(runs):
        for config in chosen:
            await one_run(config, requests, scope)


def report(chosen: list[Config], sink: str, runs: int, requests: int) -> None:
    medians = {c.name: (statistics.median(c.wall_us), statistics.median(c.cpu_us)) for c in chosen}
    base_cpu = medians["bare"][1] if "bare" in medians else None
    print(
        f"\nPython {platform.python_version()}, {os.cpu_count()} CPUs; sink: {sink}; "
        f"median of {runs} runs x {requests} requests"
    )
    header = f"{'config':<13} {'wall µs/req':>12} {'CPU µs/req':>11} {'added CPU µs':>13}"
    print(f"{header} {'CPU ratio':>10}\n{'-' * (len(header) + 11)}")
    for name, (wall, cpu) in medians.items():
        added = f"{cpu - base_cpu:13.1f} {cpu / base_cpu:10.2f}" if base_cpu else ""
        print(f"{name:<13} {wall:12.1f} {cpu:11.1f} {added}")
    if base_cpu and "defaults" in medians:
        added_us = medians["defaults"][1] - base_cpu
        verdict = "within" if added_us <= TARGET_BUDGET_US else "OVER"
        print(f"\ndefaults add {added_us:.1f} µs CPU per request: {verdict} the budget", end="")
        print(f" of {TARGET_BUDGET_US:g} µs")
    if "defaults" in medians and "metrics" in medians:
        metrics_us = medians["metrics"][1] - medians["defaults"][1]
        print(f"the HTTP server metrics add {metrics_us:.1f} µs CPU per request to the defaults")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per configuration")
    parser.add_argument("--requests", type=int, default=2000, help="requests per run")
    parser.add_argument("--warmup", type=int, default=500, help="untimed requests first")
    parser.add_argument(
        "--sink",
        choices=("otlp", "noop"),
        default="otlp",
        help="otlp: OTLP/gRPC into a discarding child process; noop: drop spans in-process",
    )
    parser.add_argument(
        "--endpoint",
        metavar="HOST:PORT",
        help="export to this receiver instead (e.g. otelhouse serve)",
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help="comma-separated subset of bare, defaults (the helper as shipped), metrics (the "
        "defaults with export_metrics=True), minimal (no "
        "trace header, no log correlation, no metrics), defaults-sdk and minimal-sdk (the same, exporting with "
        "the SDK's protobuf encoder), contrib (engine='contrib'), contrib-all (contrib "
        "with its ASGI send/receive spans kept)",
    )
    parser.add_argument(
        "--traceparent",
        action="store_true",
        help="requests carry a W3C traceparent header, as calls from an instrumented service "
        "do (default: none, as requests from outside)",
    )
    parser.add_argument("--discard-sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.runs, args.requests) < 1 or args.warmup < 0:
        parser.error("--runs and --requests must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.discard_sink:
        serve_discard_sink()
        return
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = set(names) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"unknown --configs {sorted(unknown)}")

    sink_process = None
    if args.endpoint:
        sink, endpoint = f"OTLP/gRPC to {args.endpoint}", args.endpoint
    elif args.sink == "otlp":
        sink_process, endpoint = start_discard_sink()
        sink = "OTLP/gRPC to a discarding child process"
    else:
        sink, endpoint = "in-process no-op exporter", None

    def exporter(settings: dict[str, Any]) -> dict[str, Any]:
        if endpoint:
            return {"endpoint": endpoint}
        if not metrics_export_wanted(settings.get("export_metrics")):
            return {"exporter": DiscardExporter()}
        reader = PeriodicExportingMetricReader(DiscardMetricExporter())
        return {
            "exporter": DiscardExporter(),
            "meter_provider": MeterProvider(metric_readers=[reader]),
            "export_metrics": None,
        }

    chosen = configs(names, exporter)
    try:
        scope = {**SCOPE, "headers": [*SCOPE["headers"], TRACEPARENT]} if args.traceparent else SCOPE
        asyncio.run(measure(chosen, args.runs, args.requests, args.warmup, scope))
    finally:
        for config in chosen:
            if config.handle:
                config.handle.shutdown()
        if sink_process:
            sink_process.communicate("")
    if args.traceparent:
        sink += "; requests carry traceparent"
    report(chosen, sink, args.runs, args.requests)


if __name__ == "__main__":
    main()
