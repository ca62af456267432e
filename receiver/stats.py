"""Ingest counters and the periodic log line that reports them (one line per interval,
never one per span)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, fields

log = logging.getLogger("otelhouse.receiver")


@dataclass(slots=True)
class IngestStats:
    requests: int = 0
    received: int = 0
    stored: int = 0
    rejected: int = 0
    refused: int = 0
    failed: int = 0

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
