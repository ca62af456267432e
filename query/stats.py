"""Span statistics computed in ClickHouse: counts, errors, rates and latency percentiles.

**Percentiles are approximate, with a guaranteed relative error of 1%.** They come from
ClickHouse's ``quantilesDD`` (a DDSketch with relative accuracy ``RELATIVE_ACCURACY``): for
each level q over n durations, the value returned lies within 1% of an order statistic
between the lower and the upper neighbour of rank q·(n-1) — numpy's
``quantile(method="lower")`` and ``method="higher"`` — whatever the distribution or n.
``tests/query/test_aggregates.py`` checks exactly that bound against numpy.

Why this estimator: at 10M spans ``quantilesExact`` took ~600 ms on one group and holds every
duration in memory per group; ``quantilesDD`` took ~55 ms with a small fixed-size sketch.
``quantiles`` (reservoir sampling) and ``quantilesTDigest`` are as fast but give no
worst-case bound. DDSketches also merge, so pre-aggregated rollups could store them later.

What the numbers mean (one rule for every endpoint): ``spans`` counts every span of the
group, ``requests`` the server/root spans among them and ``errors`` the spans that failed
(``storage/semantics.py``); ``error_rate`` is errors / spans; ``rate_per_s`` is spans per
second of the requested time range; percentiles are over the durations of all the spans.
Durations are milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, Field

from otelhouse.storage.semantics import ERROR, REQUEST
from otelhouse.query.units import NS_PER_MS, finite_or_none

RELATIVE_ACCURACY = 0.01
QUANTILE_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)

PERCENTILE_NOTE = (
    "Percentiles are approximate (ClickHouse quantilesDD, a DDSketch): each is within 1% of "
    "the true value (an order statistic next to rank q·(n-1)). Durations in milliseconds."
)


def quantiles_ms(*levels: float) -> str:
    """SQL for an array of duration percentiles in ms. ``levels`` are code constants, not
    user input, which is why they may be written into the SQL text."""
    if not levels or not all(0 <= level <= 1 for level in levels):
        raise ValueError(f"quantile levels must be in [0, 1], got {levels}")
    listed = ", ".join(repr(float(level)) for level in levels)
    return f"arrayMap(d -> d / {NS_PER_MS}, quantilesDD({RELATIVE_ACCURACY}, {listed})(Duration))"


SPAN_STATS_SQL = ", ".join(
    (
        "count() AS spans",
        f"countIf({REQUEST}) AS requests",
        f"countIf({ERROR}) AS errors",
        f"{quantiles_ms(*QUANTILE_LEVELS)} AS percentiles_ms",
    )
)


def error_rate(errors: int, total: int) -> float | None:
    """errors / total, or ``None`` when there is nothing to divide by."""
    return errors / total if total else None


class SpanStats(BaseModel):
    """Counts and latency of a group of spans."""

    spans: int = Field(description="Spans in the group.")
    requests: int = Field(description="Server or root spans among them.")
    errors: int = Field(description="Failed spans: StatusCode Error or HTTP status >= 500.")
    error_rate: float | None = Field(description="errors / spans; null without spans.")
    rate_per_s: float = Field(description="Spans per second over the time range (or step).")
    p50_ms: float | None = Field(description="Median duration (ms, within 1%).")
    p90_ms: float | None = Field(description="90th percentile duration (ms, within 1%).")
    p95_ms: float | None = Field(description="95th percentile duration (ms, within 1%).")
    p99_ms: float | None = Field(description="99th percentile duration (ms, within 1%).")

    @classmethod
    def from_row(cls, row: Mapping[str, Any], seconds: float, **keys: Any) -> Self:
        """Build from a row selected with :data:`SPAN_STATS_SQL`; ``keys`` are the group's
        identifying fields (service, operation, bucket start)."""
        spans, errors = int(row["spans"]), int(row["errors"])
        p50, p90, p95, p99 = (finite_or_none(v) for v in row["percentiles_ms"])
        return cls(
            **keys,
            spans=spans,
            requests=int(row["requests"]),
            errors=errors,
            error_rate=error_rate(errors, spans),
            rate_per_s=spans / seconds,
            p50_ms=p50,
            p90_ms=p90,
            p95_ms=p95,
            p99_ms=p99,
        )

    @classmethod
    def empty(cls, seconds: float, **keys: Any) -> Self:
        """A group without spans (a gap in a time series)."""
        row = {"spans": 0, "requests": 0, "errors": 0, "percentiles_ms": [None] * 4}
        return cls.from_row(row, seconds, **keys)
