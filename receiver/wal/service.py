"""The log and its drainer as one unit: what ``otelhouse serve`` starts, feeds and stops."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otelhouse.core.health import ComponentHealth
from otelhouse.receiver.batcher import Sink
from otelhouse.receiver.signal import Columns, Signal
from otelhouse.receiver.wal.drainer import Drainer, DrainStats, Insert
from otelhouse.receiver.wal.log import LogStats, WriteAheadLog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WalConfig:
    """Where the log lives, its disk budget and segment size in bytes, how many rows of
    records not yet drained it keeps in memory (also the drainer's rows per insert), and
    the longest a logged row waits for its insert to fill (``insert_max_delay_s``)."""

    directory: Path
    max_bytes: int
    segment_bytes: int
    cache_rows: int
    insert_max_delay_s: float = 0.0


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
    """``sink(signal)`` is that signal's batcher sink (acknowledge after fsync); the drainer
    stores each record with its signal's insert in ``inserts``, from construction until
    ``close``. While storage is healthy and keeping the whole backlog in
    the log's cache, ``append`` waits for room there rather than overflow it
    (:meth:`WriteAheadLog.wait_for_cache_room`)."""

    def __init__(
        self,
        wal: WriteAheadLog,
        inserts: Mapping[Signal[Any, Any], Insert],
        *,
        max_rows: int,
        max_delay_s: float = 0.0,
        max_backoff_s: float = 5.0,
        max_wait_s: float = MAX_APPEND_WAIT_S,
    ) -> None:
        self.wal = wal
        self.max_wait_s = max_wait_s
        self.drainer = Drainer(
            wal, inserts, max_rows=max_rows, max_delay_s=max_delay_s, max_backoff_s=max_backoff_s
        )
        self.drainer.start()

    @classmethod
    def open(
        cls,
        config: WalConfig,
        inserts: Mapping[Signal[Any, Any], Insert],
        *,
        max_backoff_s: float = 5.0,
    ) -> WalService:
        """The log in ``config.directory`` for the signals of ``inserts``; whatever it holds
        past its checkpoint (from before a crash or an unfinished shutdown) is drained
        first."""
        wal = WriteAheadLog(
            config.directory,
            signals=inserts.keys(),
            max_bytes=config.max_bytes,
            segment_bytes=config.segment_bytes,
            cache_rows=config.cache_rows,
        )
        replayed = wal.stats().replayed_rows
        if replayed:
            log.info("replaying %d rows logged before the last stop into storage", replayed)
        return cls(
            wal,
            inserts,
            max_rows=config.cache_rows,
            max_delay_s=config.insert_max_delay_s,
            max_backoff_s=max_backoff_s,
        )

    def append(self, signal: Signal[Any, Any], columns: Columns) -> None:
        """Log ``columns`` of ``signal`` durably (see the class for the wait before)."""
        self.wal.wait_for_cache_room(len(columns), self.max_wait_s, lambda: self.drainer.healthy)
        self.wal.append(signal, columns)

    def sink(self, signal: Signal[Any, Any]) -> Sink:
        """``append`` for ``signal``'s batcher."""
        return lambda columns: self.append(signal, columns)

    def stats(self) -> WalStats:
        return WalStats(log=self.wal.stats(), drain=self.drainer.stats())

    def health(self) -> ComponentHealth:
        """For ``/healthz``: what the log holds that storage does not have yet, and whether
        the drainer is storing it (unhealthy from a failed insert until one succeeds; the
        log keeps accepting meanwhile, up to its budget)."""
        stats = self.wal.stats()
        drain = self.drainer.stats()
        healthy = self.drainer.healthy
        return ComponentHealth(
            {
                "pending_records": stats.pending_rows,
                "pending_bytes": stats.pending_bytes,
                "drain_lag_s": round(stats.drain_lag_s, 3),
                "log_bytes": stats.log_bytes,
                "max_bytes": stats.max_bytes,
                "drainer": "storing" if healthy else f"retrying: {drain.last_error}",
            },
            healthy=healthy,
        )

    def close(self, drain_timeout_s: float) -> bool:
        """Store what the log holds for up to ``drain_timeout_s`` seconds, then close it;
        True when nothing was left for the next start."""
        drained = self.drainer.stop(drain_timeout_s)
        self.wal.close()
        return drained
