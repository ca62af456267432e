"""Known metric points for the Metrics dashboard's tests, and what the panels must show,
computed in Python and numpy from the definitions (query/metrics.py's module docstring,
storage/semantics.py), not from the SQL.

Times are epoch seconds around ``t0``, the start of the tested time range: cumulative
counters and histograms with a reset (value down, same start) and a restart (new start), a
series first seen in the range with an older start (its first point counts nothing), one
started within the look-back (counts whole), delta points, gauges with NaN and "no recorded
value" points, and process/runtime metrics of one service only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from otelhouse.storage.metrics import GAUGE, HISTOGRAM, SUM, MetricColumns
from tests.histogram_quantile import interpolated

DELTA, CUMULATIVE = 1, 2
HTTP = "http.server.request.duration"
HTTP_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
WAIT_BOUNDS = (-1.0, 1.0, 5.0, 10.0)
TRICKY_KEY = "we\\'ird\"key"
RUNTIME_PREFIXES = ("process.", "jvm.", "go.", "dotnet.", "v8js.", "nodejs.", "cpython.")
TABLES = {"gauge": GAUGE, "sum": SUM, "histogram": HISTOGRAM}


@dataclass(frozen=True)
class Point:
    kind: str
    service: str
    name: str
    attrs: dict[str, str]
    start: int
    time: int
    value: float = 0.0
    counts: tuple[int, ...] = ()
    bounds: tuple[float, ...] = ()
    total: float = 0.0
    temporality: int = CUMULATIVE
    monotonic: bool = True
    flags: int = 0
    resource: dict[str, str] = field(default_factory=dict)

    @property
    def series(self) -> tuple:
        return (self.kind, self.service, self.name, tuple(self.attrs.items()))

    @property
    def recorded(self) -> bool:
        return not self.flags & 1 and not (self.kind != "histogram" and np.isnan(self.value))


def _row(p: Point) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ResourceAttributes": {"service.name": p.service, **p.resource}, "ResourceSchemaUrl": "",
        "ScopeName": "test", "ScopeVersion": "", "ScopeAttributes": {}, "ScopeDroppedAttrCount": 0,
        "ScopeSchemaUrl": "", "ServiceName": p.service, "MetricName": p.name, "MetricDescription": "",
        "MetricUnit": "", "Attributes": p.attrs, "StartTimeUnix": p.start, "TimeUnix": p.time,
        "Flags": p.flags, "AggregationTemporality": p.temporality, "IsMonotonic": p.monotonic,
        "Value": p.value, "Count": sum(p.counts), "Sum": p.total, "BucketCounts": list(p.counts),
        "ExplicitBounds": list(p.bounds), "Min": 0.0, "Max": 0.0,
    }
    return {**row, **{c: [] for c in GAUGE.columns if c.startswith("Exemplars.")}}


def to_metric_columns(points: Iterable[Point]) -> MetricColumns:
    """The points as the storage layer's batch, each in its type's table."""
    columns = MetricColumns()
    for p in points:
        table = TABLES[p.kind]
        row = _row(p)
        for column, values in zip(table.columns, columns.lists(table)):
            values.append(row[column])
    return columns


def _histograms(rng: np.random.Generator, service: str, name: str, attrs: dict[str, str], times: range,
                start: int, bounds: tuple[float, ...], *, reset_at: int | None = None,
                restart_at: int | None = None, temporality: int = CUMULATIVE) -> list[Point]:
    counts = np.zeros(len(bounds) + 1, dtype=np.int64)
    total, points = 0.0, []
    for t in times:
        if t in (reset_at, restart_at) or temporality == DELTA:
            counts[:], total = 0, 0.0
            start = t - 5 if t == restart_at else start
        new = rng.integers(0, 9, len(counts))
        counts += new
        total += float(new.sum()) * 0.03
        points.append(Point("histogram", service, name, attrs, start, t, counts=tuple(int(c) for c in counts),
                            bounds=bounds, total=total, temporality=temporality))
    return points


def _sums(rng: np.random.Generator, service: str, name: str, attrs: dict[str, str], times: range, start: int,
          *, reset_at: int | None = None, restart_at: int | None = None, temporality: int = CUMULATIVE,
          monotonic: bool = True) -> list[Point]:
    value, points = 0.0, []
    for t in times:
        if t in (reset_at, restart_at) or temporality == DELTA:
            value = 0.0
            start = t - 5 if t == restart_at else start
        step = float(rng.integers(0, 40)) / 4
        value += step if monotonic else step - 5
        points.append(Point("sum", service, name, attrs, start, t, value=value, temporality=temporality,
                            monotonic=monotonic))
    return points


def _gauges(rng: np.random.Generator, service: str, name: str, attrs: dict[str, str], times: range) -> list[Point]:
    return [Point("gauge", service, name, attrs, 0, t, value=float(rng.normal(50, 20))) for t in times]


def make_metrics(t0: int) -> list[Point]:
    """Points from well before ``t0 - 60`` (the look-back of a 60 s interval) to after
    ``t0 + 600``, the range the tests use."""
    rng = np.random.default_rng(12)
    every15 = range(t0 - 180, t0 + 690, 15)
    old = t0 - 3600
    cart = {"http.route": "/cart", "http.request.method": "GET"}
    orders = {"http.route": "/orders", "http.request.method": "POST"}
    points = [
        *_histograms(rng, "shop", HTTP, {**cart, "http.response.status_code": "200"}, every15, old,
                     HTTP_BOUNDS, reset_at=t0 + 450),
        *_histograms(rng, "shop", HTTP, {**cart, "http.response.status_code": "503", "error.type": "503"},
                     every15, old, HTTP_BOUNDS, restart_at=t0 + 300),
        *_histograms(rng, "shop", HTTP, {**orders, "http.response.status_code": "201"},
                     range(t0 + 110, t0 + 690, 15), t0 + 100, HTTP_BOUNDS),
        *_histograms(rng, "shop", HTTP, {**orders, "http.response.status_code": "404"},
                     range(t0 + 200, t0 + 690, 20), old, HTTP_BOUNDS),
        *_histograms(rng, "shop", HTTP, {**orders, "error.type": "TimeoutError"},
                     range(t0 - 50, t0 + 690, 30), t0 - 55, HTTP_BOUNDS),
        *_histograms(rng, "shop", "queue.wait", {"queue": "a"}, every15, old, WAIT_BOUNDS, temporality=DELTA),
        *_histograms(rng, "worker", HTTP, {"http.route": "/work", "http.response.status_code": "500"},
                     every15, old, HTTP_BOUNDS),
        *_gauges(rng, "shop", "queue.depth", {"queue": "a"}, range(t0 - 120, t0 + 690, 10)),
        *_gauges(rng, "shop", "queue.depth", {"queue": "b", TRICKY_KEY: "x'y\\z"}, range(t0 - 120, t0 + 690, 20)),
        *_gauges(rng, "worker", "worker.busy", {}, range(t0 - 120, t0 + 690, 10)),
        *_sums(rng, "shop", "orders.placed", {"region": "eu"}, every15, old, reset_at=t0 + 240),
        *_sums(rng, "shop", "orders.placed", {"region": "us"}, every15, old, restart_at=t0 + 360),
        *_sums(rng, "shop", "jobs.done", {}, every15, old, temporality=DELTA),
        *_sums(rng, "shop", "process.runtime.cpython.memory", {"type": "rss"}, every15, old, monotonic=False),
        *_sums(rng, "shop", "process.runtime.cpython.memory", {"type": "vms"}, every15, old, monotonic=False),
        *_sums(rng, "shop", "process.cpu.time", {"state": "user"}, every15, old, reset_at=t0 + 330),
        *_sums(rng, "shop", "process.cpu.time", {"state": "system"}, every15, old),
        *_gauges(rng, "shop", "process.runtime.cpython.cpu_utilization", {}, every15),
    ]
    broken = [
        Point("gauge", "shop", "queue.depth", {"queue": "a"}, 0, t0 + 125, value=float("nan")),
        Point("gauge", "shop", "queue.depth", {"queue": "a"}, 0, t0 + 135, value=1e9, flags=1),
        Point("sum", "shop", "orders.placed", {"region": "eu"}, old, t0 + 137, value=1e9, flags=1),
        Point("histogram", "shop", HTTP, {**cart, "http.response.status_code": "200"}, old, t0 + 137,
              counts=(10**6,) * 9, bounds=HTTP_BOUNDS, flags=1),
    ]
    return points + broken


# --------------------------------------------------------------- the rules, in Python


@dataclass(frozen=True)
class Increment:
    point: Point
    count: int
    counts: np.ndarray
    value: float


def _whole(p: Point) -> Increment:
    return Increment(p, sum(p.counts), np.array(p.counts, dtype=np.int64), p.value)


def _reset(p: Point, prev: Point) -> bool:
    if p.kind == "histogram":
        return sum(p.counts) < sum(prev.counts) or p.bounds != prev.bounds
    return p.monotonic and p.value < prev.value


def increments(points: Iterable[Point], lookback: int, start: int, end: int) -> list[Increment]:
    """Each recorded point in ``[start, end]`` with its increment: the series' points are read
    from ``lookback`` on; a delta point, the first of a run (new start or reset) and a series'
    first point started at or after ``lookback`` count whole, a series' first point started
    earlier counts nothing, any other the difference to its predecessor."""
    series: dict[tuple, list[Point]] = defaultdict(list)
    for p in points:
        if p.recorded and lookback <= p.time <= end:
            series[p.series].append(p)
    found = []
    for run in series.values():
        run.sort(key=lambda p: (p.time, sum(p.counts) if p.kind == "histogram" else p.value))
        for i, p in enumerate(run):
            prev = run[i - 1] if i else None
            if p.temporality == DELTA or (prev and (p.start != prev.start or _reset(p, prev))):
                inc = _whole(p)
            elif prev is None:
                nothing = Increment(p, 0, np.zeros(len(p.counts), dtype=np.int64), 0.0)
                inc = _whole(p) if p.start >= lookback else nothing
            else:
                inc = Increment(p, sum(p.counts) - sum(prev.counts),
                                np.array(p.counts, dtype=np.int64) - np.array(prev.counts), p.value - prev.value)
            if p.time >= start:
                found.append(inc)
    return found


def grouped(items: Iterable[Any], key: Callable[[Any], tuple]) -> dict[tuple, list[Any]]:
    groups: dict[tuple, list[Any]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def quantiles(incs: list[Increment], qs: dict[str, float]) -> dict[str, float] | None:
    """The quantiles of the summed bucket increments, from the bound set holding most
    observations; None without observations."""
    by_bounds = {b: np.sum([i.counts for i in g], axis=0)
                 for (b,), g in grouped(incs, lambda i: (i.point.bounds,)).items()}
    totals = {b: int(c.sum()) for b, c in by_bounds.items()}
    best = max(totals, key=totals.__getitem__)
    if totals[best] == 0:
        return None
    return {name: interpolated(by_bounds[best], best, q) for name, q in qs.items()}


def is_http_error(p: Point) -> bool:
    status = p.attrs.get("http.response.status_code", "")
    return p.attrs.get("error.type", "") != "" or (status.isdigit() and int(status) >= 500)


def is_runtime(name: str) -> bool:
    return name.startswith(RUNTIME_PREFIXES)


def runtime_series(p: Point) -> str:
    attrs = ", ".join(f"{k}={v}" for k, v in p.attrs.items())
    return f"{p.name}{{{attrs}}}" if attrs else p.name
