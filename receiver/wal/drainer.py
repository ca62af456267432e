"""The drainer: a thread moving logged rows into storage in large, idempotent inserts, each
batch through the insert of its signal.

It never skips a batch: while storage fails it retries the same batch (same token) with
exponential backoff, so an outage only grows the log, and the log's byte budget is what
eventually pushes back on clients.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otelhouse.receiver.signal import Signal
from otelhouse.receiver.wal.log import DrainBatch, WriteAheadLog

log = logging.getLogger(__name__)

Insert = Callable[[Any, str], None]
"""Store a batch of one signal's columns under the given deduplication token: a second call
with the same token must not store them again (``insert_deduplication_token`` in
ClickHouse)."""

_POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class DrainStats:
    inserts: int
    insert_failures: int
    insert_seconds: float
    last_insert_s: float
    last_error: str


class Drainer:
    """Drains ``wal`` from a thread of its own, storing each batch with the insert its
    signal maps to in ``inserts``.

    Inserts are of at most ``max_rows`` rows. Freshness is traded for fewer, larger parts:
    a batch is inserted once ``max_rows`` rows are pending or the oldest of them has waited
    ``max_delay_s`` (or appends are waiting for room in the log's cache, a backlog is read
    from disk, or the drainer is stopping). Clients are answered at the log's fsync, so
    the delay adds to the time before rows are queryable, never to request latency."""

    def __init__(
        self,
        wal: WriteAheadLog,
        inserts: Mapping[Signal[Any, Any], Insert],
        *,
        max_rows: int,
        max_delay_s: float = 0.0,
        min_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._wal = wal
        self._insert_by_signal = {signal.name: insert for signal, insert in inserts.items()}
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="otelhouse-wal-drainer", daemon=True)
        self._inserts = 0
        self._failures = 0
        self._insert_seconds = 0.0
        self._last_insert_s = 0.0
        self._last_error = ""
        self._failures_in_a_row = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        """Drain what the log holds for at most ``timeout_s`` seconds, then stop; True when
        everything was stored (the rest is replayed at the next start)."""
        self._deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._wal.wake()
        self._thread.join(timeout_s + 1.0)
        if self._thread.is_alive():
            log.warning("write-ahead log drainer still busy after %.0fs; left running", timeout_s)
        return self._wal.pending_rows == 0

    @property
    def healthy(self) -> bool:
        """False from a failed insert until the next one succeeds: storage is unreachable
        or refusing, and the log should take everything meanwhile."""
        return self._failures_in_a_row == 0

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> DrainStats:
        return DrainStats(
            inserts=self._inserts,
            insert_failures=self._failures,
            insert_seconds=self._insert_seconds,
            last_insert_s=self._last_insert_s,
            last_error=self._last_error,
        )

    def _run(self) -> None:
        batch: DrainBatch | None = None
        backoff = self._min_backoff_s
        while not self._should_exit():
            try:
                if batch is None:
                    if not self._wal.wait_for_rows(
                        self._max_rows, self._max_delay_s, _POLL_S, self._stop.is_set
                    ):
                        continue
                    batch = self._wal.next_batch(self._max_rows, _POLL_S)
                    if batch is None:
                        continue
                    self._wal.begin(batch)
                self._store(batch)
                self._wal.commit(batch)
            except Exception as exc:  # noqa: BLE001 - storage and disk errors alike: retry
                self._failures += 1
                self._failures_in_a_row += 1
                if str(exc) != self._last_error:
                    log.warning("write-ahead log drain failed, retrying with backoff: %s", exc)
                self._last_error = str(exc)
                self._pause(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
            else:
                if self._failures_in_a_row:
                    log.info(
                        "write-ahead log drain resumed after %d failures", self._failures_in_a_row
                    )
                    self._last_error = ""
                    self._failures_in_a_row = 0
                batch = None
                backoff = self._min_backoff_s

    def _store(self, batch: DrainBatch) -> None:
        started = time.perf_counter()
        self._insert_by_signal[batch.signal](batch.columns, batch.token)
        elapsed = time.perf_counter() - started
        self._inserts += 1
        self._insert_seconds += elapsed
        self._last_insert_s = elapsed

    def _pause(self, seconds: float) -> None:
        """Back off; a stop request cuts the pause short only at the drain deadline, so a
        shutdown against failing storage keeps retrying at the same pace instead of spinning."""
        if self._stop.wait(seconds):
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))

    def _should_exit(self) -> bool:
        if not self._stop.is_set():
            return False
        return self._wal.pending_rows == 0 or time.monotonic() >= self._deadline
