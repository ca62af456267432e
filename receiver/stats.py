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


def describe_interval(
    previous: IngestStats,
    now: IngestStats,
    interval_s: float,
    drained: int | None = None,
) -> str:
    """The ingest log line for one interval. With the write-ahead log, ``drained`` is how many
    spans reached storage meanwhile, and the receiver's own "stored" are spans logged."""
    stored = (
        f"stored={now.stored - previous.stored}"
        if drained is None
        else f"logged={now.stored - previous.stored} stored={drained}"
    )
    return (
        f"spans received={now.received - previous.received} {stored} "
        f"rejected={now.rejected - previous.rejected}, "
        f"requests={now.requests - previous.requests} refused={now.refused - previous.refused} "
        f"failed={now.failed - previous.failed} in the last {interval_s:.0f}s"
    )


async def report_periodically(
    stats: IngestStats, interval_s: float, drained_total: Callable[[], int] | None = None
) -> None:
    """Log what changed in each interval; quiet intervals log nothing. ``drained_total``
    counts spans the write-ahead log has put in storage, when it is on."""
    previous = stats.snapshot()
    previous_drained = drained_total() if drained_total else 0
    while True:
        await asyncio.sleep(interval_s)
        now = stats.snapshot()
        now_drained = drained_total() if drained_total else 0
        if now != previous or now_drained != previous_drained:
            drained = now_drained - previous_drained if drained_total else None
            log.info("%s", describe_interval(previous, now, interval_s, drained))
        previous, previous_drained = now, now_drained


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
