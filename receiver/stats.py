"""Ingest counters and the periodic log line that reports them (one line per interval,
never one per span)."""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import TypeVar

log = logging.getLogger("otelhouse.receiver")

Batch = TypeVar("Batch")


@dataclass(slots=True)
class IngestStats:
    requests: int = 0
    received: int = 0
    stored: int = 0
    rejected: int = 0
    refused: int = 0
    failed: int = 0
    invalid_requests: int = 0
    oversize_requests: int = 0
    unauthenticated_requests: int = 0
    retry_later_requests: int = 0

    def snapshot(self) -> IngestStats:
        return IngestStats(**{f.name: getattr(self, f.name) for f in fields(self)})


async def report_periodically(stats: IngestStats, interval_s: float) -> None:
    """Log what changed in each interval; quiet intervals log nothing."""
    previous = stats.snapshot()
    while True:
        await asyncio.sleep(interval_s)
        now = stats.snapshot()
        if now != previous:
            log.info(
                "spans received=%d stored=%d rejected=%d, requests=%d refused=%d "
                "failed=%d in the last %.0fs",
                now.received - previous.received,
                now.stored - previous.stored,
                now.rejected - previous.rejected,
                now.requests - previous.requests,
                now.refused - previous.refused,
                now.failed - previous.failed,
                interval_s,
            )
        previous = now


WRITE_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class LatencyHistogram:
    """Cumulative-bucket histogram in the shape Prometheus expects.

    Observed from the batcher's writer thread and read from the event loop; a reader may see
    one observation half-applied, which a scrape tolerates (the next one is consistent).
    """

    bounds: tuple[float, ...] = WRITE_SECONDS_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> Iterator[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` pairs, ending with ``(inf, count)``."""
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            yield bound, running

    @contextmanager
    def time(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started)


def timed(sink: Callable[[Batch], None], histogram: LatencyHistogram) -> Callable[[Batch], None]:
    """``sink`` with every call's duration observed, failed calls included."""

    def write(batch: Batch) -> None:
        with histogram.time():
            sink(batch)

    return write
