"""The log and its drainer as one unit: what ``otelhouse serve`` starts, feeds and stops."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from otelhouse.receiver.wal.drainer import Drainer, DrainStats, Insert
from otelhouse.receiver.wal.log import LogStats, WriteAheadLog
from otelhouse.storage.traces import SpanColumns

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WalConfig:
    """Where the log lives, its disk budget and segment size in bytes, and how many rows
    of records not yet drained it keeps in memory (also the drainer's rows per insert)."""

    directory: Path
    max_bytes: int
    segment_bytes: int
    cache_rows: int


@dataclass(frozen=True, slots=True)
class WalStats:
    """What ``/metrics`` reports about the log: ``log`` (bytes on disk, rows and bytes not
    yet stored, drain lag in seconds, counters) and ``drain`` (insert count, failures,
    latency)."""

    log: LogStats
    drain: DrainStats


MAX_APPEND_WAIT_S = 2.0
"""Longest an append waits for the drainer to make room in the cache; past it the record is
logged anyway (and read back from disk later), so a slow but healthy store never stalls
acknowledgements for longer."""


class WalService:
    """``append`` is the batcher's sink (acknowledge after fsync); the drainer runs from
    construction until ``close``. While storage is healthy and keeping the whole backlog in
    the log's cache, ``append`` waits for room there rather than overflow it
    (:meth:`WriteAheadLog.wait_for_cache_room`)."""

    def __init__(
        self,
        wal: WriteAheadLog,
        insert: Insert,
        *,
        max_rows: int,
        max_backoff_s: float = 5.0,
        max_wait_s: float = MAX_APPEND_WAIT_S,
    ) -> None:
        self.wal = wal
        self.max_wait_s = max_wait_s
        self.drainer = Drainer(wal, insert, max_rows=max_rows, max_backoff_s=max_backoff_s)
        self.drainer.start()

    @classmethod
    def open(cls, config: WalConfig, insert: Insert, *, max_backoff_s: float = 5.0) -> WalService:
        """The log in ``config.directory``; whatever it holds past its checkpoint (from
        before a crash or an unfinished shutdown) is drained first."""
        wal = WriteAheadLog(
            config.directory,
            max_bytes=config.max_bytes,
            segment_bytes=config.segment_bytes,
            cache_rows=config.cache_rows,
        )
        replayed = wal.stats().replayed_rows
        if replayed:
            log.info("replaying %d spans logged before the last stop into storage", replayed)
        return cls(wal, insert, max_rows=config.cache_rows, max_backoff_s=max_backoff_s)

    def append(self, spans: SpanColumns) -> None:
        self.wal.wait_for_cache_room(len(spans), self.max_wait_s, lambda: self.drainer.healthy)
        self.wal.append(spans)

    def stats(self) -> WalStats:
        return WalStats(log=self.wal.stats(), drain=self.drainer.stats())

    def close(self, drain_timeout_s: float) -> bool:
        """Store what the log holds for up to ``drain_timeout_s`` seconds, then close it;
        True when nothing was left for the next start."""
        drained = self.drainer.stop(drain_timeout_s)
        self.wal.close()
        return drained
