"""Request and span statistics computed in ClickHouse: counts, errors, rates and latency
percentiles.

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

What the numbers mean (one rule for every endpoint):

- **Request statistics** (:class:`RequestStats`: services, summary, latency series) count a
  service's requests — its entry spans (``storage/semantics.py``) — and nothing else:
  ``errors`` are the failed requests, ``error_rate`` is errors / requests and the
  percentiles are over the requests' durations. Outgoing calls and internal spans do not
  count, so a 404 an outgoing call received is not the caller's error.
- **Span statistics** (:class:`SpanStats`: operations) count every span of the group (one
  span name and kind): ``errors`` / ``spans``, percentiles over those spans.
- ``rate_per_s`` is the count per second over the part of the range that has data for the
  group: from its first to its last counted span in the range (at least one second), so a
  service that started sending ten minutes into a one-hour range shows its real rate. In a
  time series it is per bucket: the count over the bucket's seconds inside the range.

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
MIN_ACTIVE_S = 1.0
"""The shortest span of time a rate is computed over (one request is 1/s, not infinite)."""

PERCENTILE_NOTE = (
    "Percentiles are approximate (ClickHouse quantilesDD, a DDSketch): each is within 1% of "
    "the true value (an order statistic next to rank q·(n-1)). Durations in milliseconds."
)
RATE_NOTE = (
    "rate_per_s is per second from the first to the last counted span in the range (at least "
    "1 s), not over the whole range."
)


def _levels(levels: tuple[float, ...]) -> str:
    if not levels or not all(0 <= level <= 1 for level in levels):
        raise ValueError(f"quantile levels must be in [0, 1], got {levels}")
    return ", ".join(repr(float(level)) for level in levels)


def quantiles_ms(*levels: float) -> str:
    """SQL for an array of duration percentiles in ms. ``levels`` are code constants, not
    user input, which is why they may be written into the SQL text."""
    return (
        f"arrayMap(d -> d / {NS_PER_MS}, "
        f"quantilesDD({RELATIVE_ACCURACY}, {_levels(levels)})(Duration))"
    )


def stats_sql(counted: str) -> str:
    """SQL columns ``n``, ``errors``, ``percentiles_ms``, ``first_ns`` and ``last_ns`` over
    the rows of each group that match ``counted`` (a code constant, e.g.
    :data:`~otelhouse.storage.semantics.REQUEST`); other rows of the group are ignored, so
    one scan can count requests and all spans side by side."""
    return ", ".join(
        (
            f"countIf({counted}) AS n",
            f"countIf(({counted}) AND ({ERROR})) AS errors",
            f"arrayMap(d -> d / {NS_PER_MS}, quantilesDDIf({RELATIVE_ACCURACY}, "
            f"{_levels(QUANTILE_LEVELS)})(Duration, {counted})) AS percentiles_ms",
            f"toUnixTimestamp64Nano(minIf(Timestamp, {counted})) AS first_ns",
            f"toUnixTimestamp64Nano(maxIf(Timestamp, {counted})) AS last_ns",
        )
    )


REQUEST_STATS_SQL = stats_sql(REQUEST)
SPAN_STATS_SQL = stats_sql("1")


def error_rate(errors: int, total: int) -> float | None:
    """errors / total, or ``None`` when there is nothing to divide by."""
    return errors / total if total else None


def active_seconds(first_ns: int, last_ns: int) -> float:
    """Seconds from the first to the last counted span, at least :data:`MIN_ACTIVE_S`."""
    return max((last_ns - first_ns) / 1e9, MIN_ACTIVE_S)


def _fields(row: Mapping[str, Any], seconds: float | None) -> dict[str, Any]:
    """Counts, rate and percentiles of a :func:`stats_sql` row; the rate is over ``seconds``
    when given (a time series bucket), else over the row's first to last span."""
    n, errors = int(row["n"]), int(row["errors"])
    if seconds is None:
        seconds = active_seconds(int(row["first_ns"]), int(row["last_ns"]))
    p50, p90, p95, p99 = (finite_or_none(v) for v in row["percentiles_ms"])
    return {
        "errors": errors,
        "error_rate": error_rate(errors, n),
        "rate_per_s": n / seconds if n else 0.0,
        "p50_ms": p50,
        "p90_ms": p90,
        "p95_ms": p95,
        "p99_ms": p99,
    }


EMPTY_ROW: Mapping[str, Any] = {
    "n": 0, "errors": 0, "percentiles_ms": [None] * 4, "first_ns": 0, "last_ns": 0
}


class _Latency(BaseModel):
    rate_per_s: float = Field(
        description="Per second from the first to the last counted span in the range (at "
        "least 1 s); in a time series, per second of the bucket inside the range."
    )
    p50_ms: float | None = Field(description="Median duration (ms, within 1%).")
    p90_ms: float | None = Field(description="90th percentile duration (ms, within 1%).")
    p95_ms: float | None = Field(description="95th percentile duration (ms, within 1%).")
    p99_ms: float | None = Field(description="99th percentile duration (ms, within 1%).")


class RequestStats(_Latency):
    """Counts and latency of a group's requests (entry spans)."""

    requests: int = Field(description="Requests: entry spans (Server, Consumer or root).")
    errors: int = Field(
        description="Failed requests: StatusCode Error or HTTP status >= 500 on the entry span."
    )
    error_rate: float | None = Field(description="errors / requests; null without requests.")

    @classmethod
    def from_row(cls, row: Mapping[str, Any], seconds: float | None = None, **keys: Any) -> Self:
        """Build from a row selected with :data:`REQUEST_STATS_SQL`; ``seconds`` fixes the
        rate's denominator (a bucket), ``keys`` are the group's identifying fields."""
        return cls(**keys, requests=int(row["n"]), **_fields(row, seconds))

    @classmethod
    def empty(cls, seconds: float, **keys: Any) -> Self:
        """A group without requests (a gap in a time series)."""
        return cls.from_row(EMPTY_ROW, seconds, **keys)


class SpanStats(_Latency):
    """Counts and latency of every span of a group."""

    spans: int = Field(description="Spans in the group.")
    errors: int = Field(description="Failed spans: StatusCode Error or HTTP status >= 500.")
    error_rate: float | None = Field(description="errors / spans; null without spans.")

    @classmethod
    def from_row(cls, row: Mapping[str, Any], seconds: float | None = None, **keys: Any) -> Self:
        """Build from a row selected with :data:`SPAN_STATS_SQL`."""
        return cls(**keys, spans=int(row["n"]), **_fields(row, seconds))
